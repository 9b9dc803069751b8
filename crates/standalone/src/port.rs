//! The Northbound side of an attachment: the logical switch (the network) and the logical switch
//! port (the attachment), found or created, and waited on.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use model::addressing::{self, mac_for_ip, mac_for_name};
use ovn::columns::Model;
use ovn::names;
use ovn::nb::{self, DhcpOptions, LogicalSwitch, LogicalSwitchPort, NewPort};
use ovsdb::datum::Uuid;
use ovsdb::monitor::MonitorTable;
use ovsdb::ops::{Condition, Operation, Where};
use ovsdb::replica::{Replica, ReplicaConfig};
use ovsdb::Client;

use cni::plumb::db_error;
use cni::{CniError, Request};

/// The logical switch port name for this request: from the pod identity the runtime passes in
/// CNI_ARGS (so the controller and the plugin agree), else from the container ID.
pub fn port_name(req: &Request) -> String {
    let a = &req.env.args;
    match (&a.pod_namespace, &a.pod_name) {
        (Some(ns), Some(pod)) if !ns.is_empty() && !pod.is_empty() => model::names::pod_port(ns, pod, req.ifname()),
        _ => names::container_port(req.container_id(), req.ifname()),
    }
}

async fn select<M: Model>(nb: &Client, cond: Condition) -> Result<Vec<M>, CniError> {
    let res = nb
        .transact(nb::DB, vec![Operation::select(M::TABLE).filter(cond)])
        .await
        .map_err(|e| db_error(&format!("reading {}", M::TABLE), e))?;
    Ok(res.into_iter().next().and_then(|r| r.rows).unwrap_or_default().iter().map(M::from_row).collect())
}

/// The switch named `name`; unknown or ambiguous names are config errors (code 7).
pub async fn find_switch(nb: &Client, name: &str) -> Result<LogicalSwitch, CniError> {
    let mut found = select::<LogicalSwitch>(nb, Condition::eq("name", name)).await?;
    match found.len() {
        0 => Err(CniError::invalid_config(format!("network {name:?}: no OVN logical switch of that name in the Northbound database"))),
        1 => Ok(found.remove(0)),
        n => Err(CniError::invalid_config(format!("network {name:?}: {n} OVN logical switches have that name"))),
    }
}

/// The switch named `name`, if exactly one has that name.
pub async fn switch_named(nb: &Client, name: &str) -> Result<Option<LogicalSwitch>, CniError> {
    let mut found = select::<LogicalSwitch>(nb, Condition::eq("name", name)).await?;
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// The ports the plugin made (`owner=cni`) on chassis `node`.
pub async fn cni_ports_of_node(nb: &Client, node: &str) -> Result<Vec<LogicalSwitchPort>, CniError> {
    let ids = ovsdb::datum::Datum::map([(names::OWNER, names::OWNER_CNI), (names::NODE, node)]);
    select::<LogicalSwitchPort>(nb, Condition::includes("external_ids", ids)).await
}

/// The port named `name`, if any.
pub async fn find_port(nb: &Client, name: &str) -> Result<Option<LogicalSwitchPort>, CniError> {
    Ok(select::<LogicalSwitchPort>(nb, Condition::eq("name", name)).await?.into_iter().next())
}

/// The switch that holds port `port`.
pub async fn switch_of(nb: &Client, port: Uuid) -> Result<Option<LogicalSwitch>, CniError> {
    Ok(select::<LogicalSwitch>(nb, Condition::includes("ports", ovsdb::datum::Datum::uuid(port))).await?.into_iter().next())
}

/// The DHCP_Options row serving `subnet`, if the administrator made one.
pub async fn dhcp_for(nb: &Client, subnet: &Ipv4Net) -> Result<Option<DhcpOptions>, CniError> {
    Ok(select::<DhcpOptions>(nb, Condition::eq("cidr", subnet.to_string().as_str())).await?.into_iter().next())
}

/// What the `addresses` column of a new port named `name` should say for this request.
pub fn addresses_for(name: &str, req_mac: Option<&str>, req_ips: &[IpNet], subnet: Option<&Ipv4Net>) -> Result<String, CniError> {
    for ip in req_ips {
        if let (IpNet::V4(v4), Some(s)) = (ip, subnet) {
            if !s.contains(&v4.addr()) {
                return Err(CniError::invalid_config(format!("requested IP {ip} is not in the network's subnet {s}")));
            }
        }
    }
    if !req_ips.is_empty() {
        let mac = match req_mac {
            Some(m) => m.to_string(),
            None => match req_ips.iter().find_map(|n| match n.addr() {
                IpAddr::V4(a) => Some(a),
                _ => None,
            }) {
                Some(a) => mac_for_ip(a),
                None => return Err(CniError::invalid_config("a static IPv6-only request also needs a \"mac\"")),
            },
        };
        let ips: Vec<String> = req_ips.iter().map(|n| n.addr().to_string()).collect();
        return Ok(format!("{mac} {}", ips.join(" ")));
    }
    Ok(match (req_mac, subnet) {
        (Some(m), Some(_)) => format!("{m} dynamic"),
        (Some(m), None) => m.to_string(),
        (None, Some(_)) => "dynamic".to_string(),
        (None, None) => mac_for_name(name),
    })
}

/// How many times ADD re-reads and re-checks the switch when its address guard fails (another
/// port was added or got addresses between the check and the write).
const ADDRESS_ATTEMPTS: usize = 5;

/// The fixed addresses a request claims (what must not be held by another port): only what the
/// request itself names (`runtimeConfig.ips`/`mac`), with the MAC derived from the IP when the
/// request names IPs only. `entry` is the new port's `addresses` entry from [`addresses_for`].
fn requested_claim(entry: &str, req_mac: Option<&str>, req_ips: &[IpNet]) -> addressing::Claim {
    if req_ips.is_empty() && req_mac.is_none() {
        return addressing::Claim::default();
    }
    addressing::Claim::of_entry(entry)
}

/// The ports of `switch`, read in one transaction (one select per port: the switch's size, not
/// the database's).
async fn ports_of(nb: &Client, switch: &LogicalSwitch) -> Result<Vec<LogicalSwitchPort>, CniError> {
    if switch.ports.is_empty() {
        return Ok(Vec::new());
    }
    let ops = switch.ports.iter().map(|u| Operation::select("Logical_Switch_Port").filter(Condition::uuid(*u))).collect();
    let res = nb.transact(nb::DB, ops).await.map_err(|e| db_error("reading the network's logical switch ports", e))?;
    Ok(res.into_iter().flat_map(|r| r.rows.unwrap_or_default()).map(|r| LogicalSwitchPort::from_row(&r)).collect())
}

/// Checks that port `name` may claim `claim` on `switch` (read again when `reread`): the
/// switch's rules (subnet, network and broadcast addresses, `exclude_ips`) and the addresses its
/// other ports hold (a port named `name` itself, which this ADD replaces, does not count).
/// Returns the switch as read and the guards to send with the write, so that the check and the
/// write are one: the transaction fails if the switch's ports changed since (see
/// [`nb::address_guards`]). Nothing to check and no guards when the request claims nothing.
async fn check_claim(
    nb: &Client,
    switch: &LogicalSwitch,
    name: &str,
    claim: &addressing::Claim,
    reread: bool,
) -> Result<(LogicalSwitch, Vec<Operation>), CniError> {
    let sw = if reread { find_switch(nb, &switch.name).await? } else { switch.clone() };
    if claim.is_empty() {
        return Ok((sw, Vec::new()));
    }
    let ports = ports_of(nb, &sw).await?;
    let holdings: Vec<addressing::PortHolding> = ports
        .iter()
        .map(|p| addressing::PortHolding::new(&p.name, &p.addresses, p.dynamic_addresses.as_deref(), &p.external_ids))
        .collect();
    let rules = addressing::SwitchRules::from_other_config(&sw.other_config);
    addressing::check_claim(&rules, name, claim, &holdings)
        .map_err(|e| CniError::invalid_config(format!("network {:?}: requested {e}", sw.name)))?;
    let guards = nb::address_guards(&sw, &ports);
    Ok((sw, guards))
}

/// The port for this attachment and whether this call created it.
pub struct Attached {
    pub port: LogicalSwitchPort,
    pub created: bool,
}

/// What ADD may do with a port that already has this attachment's name.
#[derive(Debug, PartialEq)]
enum Existing {
    /// It is this attachment's port (a retried ADD), the controller's port for this pod, or an
    /// administrator's port: use it as it is.
    Use,
    /// A port the plugin made for another pod (UID) or another container: replace it.
    Replace { old_uid: String, old_container: String },
    /// The controller made it for another pod: refuse (the controller will update it).
    Refuse(CniError),
}

fn existing(port: &LogicalSwitchPort, req: &Request) -> Existing {
    let ids = &port.external_ids;
    let owner = ids.get(names::OWNER).map(String::as_str);
    let uid = ids.get(names::POD_UID).map(String::as_str).filter(|u| !u.is_empty());
    let req_uid = req.env.args.pod_uid.as_deref().filter(|u| !u.is_empty());
    let other_uid = match (uid, req_uid) {
        (Some(have), Some(want)) if have != want => Some(have),
        _ => None,
    };
    match owner {
        Some(names::OWNER_CONTROLLER) => match (other_uid, req_uid) {
            (Some(old), Some(new)) => Existing::Refuse(CniError::try_again_later(format!(
                "logical switch port {:?} was made by the kubetron controller for pod UID {old}, not for this pod (UID {new}); \
                 the controller updates it for the new pod, try again later",
                port.name
            ))),
            _ => Existing::Use,
        },
        Some(names::OWNER_CNI) => {
            let cid = ids.get(names::CONTAINER_ID).map(String::as_str).unwrap_or("");
            if other_uid.is_some() || cid != req.container_id() {
                Existing::Replace { old_uid: uid.unwrap_or("").to_string(), old_container: cid.to_string() }
            } else {
                Existing::Use
            }
        }
        _ => Existing::Use,
    }
}

/// Finds the port the controller (or an earlier ADD of this container) made, or creates it.
///
/// A port of that name the plugin made for another pod UID or another container (a pod
/// re-created under the same name, a new sandbox, a port leaked by a DEL that could not reach
/// the database) is never adopted: it is deleted and the new one created in one transaction, so
/// its addresses are released and the new port gets its own. A port the controller made for
/// another pod UID is refused with code 11: the controller re-creates it for the new pod.
/// `node` (the chassis name) is recorded on ports this call creates, so that GC on this node
/// finds them.
pub async fn ensure_port(nb: &Client, req: &Request, switch: &LogicalSwitch, name: &str, node: Option<&str>) -> Result<Attached, CniError> {
    let mut replacing = None;
    if let Some(port) = find_port(nb, name).await? {
        match existing(&port, req) {
            Existing::Use => {
                if !switch.ports.contains(&port.uuid) {
                    return Err(CniError::invalid_config(format!(
                        "logical switch port {name:?} exists but belongs to another network than {:?}",
                        switch.name
                    )));
                }
                return Ok(Attached { port, created: false });
            }
            Existing::Refuse(e) => return Err(e),
            Existing::Replace { old_uid, old_container } => {
                tracing::warn!(
                    port = name,
                    old_pod_uid = %old_uid,
                    old_container = %old_container,
                    new_pod_uid = req.env.args.pod_uid.as_deref().unwrap_or(""),
                    new_container = req.container_id(),
                    "replacing a logical switch port left by an earlier pod or container (its addresses are released)"
                );
                replacing = Some(port);
            }
        }
    }

    let req_ips = req.config.requested_ips()?;
    let req_mac = req.config.runtime_config.as_ref().and_then(|r| r.mac.as_deref());
    let subnet = switch.subnet();
    let addresses = addresses_for(name, req_mac, &req_ips, subnet.as_ref())?;
    let dhcp = match &subnet {
        Some(s) => dhcp_for(nb, s).await?.map(|d| d.uuid),
        None => None,
    };
    // Bound to the pod generation, as the controller's ports are: only an OVS Interface carrying
    // this pod's UID (which ADD sets from K8S_POD_UID) binds it, so a stale sandbox or a re-created
    // pod of the same name cannot take the port over.
    let options = req
        .env
        .args
        .pod_uid
        .as_ref()
        .filter(|u| !u.is_empty())
        .map(|u| BTreeMap::from([(model::names::IFACE_ID_VER.to_string(), u.clone())]))
        .unwrap_or_default();
    let new = NewPort {
        name: name.to_string(),
        addresses: vec![addresses],
        dhcpv4_options: dhcp,
        options,
        external_ids: port_tags(req, node),
        ..Default::default()
    };
    // Fixed addresses the request names are checked against the switch's rules and its other
    // ports, and the check travels with the write as guards (see `check_claim`): of two
    // concurrent ADDs claiming one address exactly one commits; the other re-reads, re-checks
    // and is refused naming the holder.
    let claim = requested_claim(&new.addresses[0], req_mac, &req_ips);
    let mut attempt = 0;
    let (res, first_new) = loop {
        let (sw, guards) = check_claim(nb, switch, name, &claim, attempt > 0).await?;
        attempt += 1;
        // Replacing: the old row must still be exactly what we read (else a concurrent ADD or DEL
        // got there first: try again), and it leaves its switch in the same transaction the new
        // port is created in (ports are not root rows: detached, the database deletes it).
        let mut ops = Vec::new();
        if let Some(old) = &replacing {
            ops.push(
                Operation::wait("Logical_Switch_Port")
                    .filter(Condition::uuid(old.uuid))
                    .columns(["external_ids"])
                    .until(ovsdb::ops::WaitUntil::Equal)
                    .row(ovsdb::datum::Row::new().with("external_ids", ovn::columns::map_datum(&old.external_ids)))
                    .timeout_ms(0),
            );
        }
        // The address guards see the switch as read: before the old port leaves it.
        let guarded = ops.len()..ops.len() + guards.len();
        ops.extend(guards);
        if let Some(old) = &replacing {
            ops.push(
                Operation::mutate("Logical_Switch", Where::includes("ports", ovsdb::datum::Datum::uuid(old.uuid)))
                    .mutation(ovsdb::ops::Mutation::delete("ports", ovsdb::datum::Datum::uuid(old.uuid))),
            );
        }
        let first_new = ops.len();
        ops.extend(nb::add_port(sw.uuid, &new, "lsp"));
        match nb.transact(nb::DB, ops).await {
            Ok(r) => break (r, first_new),
            Err(e) if nb::is_guard_failure(&e) && e.txn().and_then(|t| t.index).is_some_and(|i| guarded.contains(&i)) => {
                if attempt >= ADDRESS_ATTEMPTS {
                    return Err(CniError::try_again_later(format!(
                        "logical switch {:?} kept changing while checking the addresses of port {name:?}; try again",
                        switch.name
                    )));
                }
                tracing::info!(port = name, attempt, "the switch's ports changed since the address check; checking again");
            }
            Err(e) if replacing.is_some() && is_failed_wait(&e) => {
                return Err(CniError::try_again_later(format!(
                    "logical switch port {name:?} changed while it was being replaced; try again"
                )))
            }
            Err(e) => return Err(db_error(&format!("creating logical switch port {name:?}"), e)),
        }
    };
    if res.get(first_new + 1).and_then(|r| r.count) != Some(1) {
        // The switch vanished between our read and the write; the new port was not attached
        // anywhere, so the database dropped it (ports are not root rows).
        return Err(CniError::try_again_later(format!("logical switch {:?} disappeared while plugging", switch.name)));
    }
    let uuid = res.get(first_new).and_then(|r| r.uuid).unwrap_or_else(Uuid::nil);
    let port = LogicalSwitchPort {
        uuid,
        name: new.name.clone(),
        addresses: new.addresses.clone(),
        dhcpv4_options: dhcp,
        external_ids: new.external_ids.clone(),
        ..Default::default()
    };
    Ok(Attached { port, created: true })
}

/// Whether a transaction failed on its first operation, the `wait` (the row changed or is gone).
fn is_failed_wait(e: &ovsdb::Error) -> bool {
    e.txn().is_some_and(|t| t.index == Some(0) && t.error == "timed out")
}

/// The `external_ids` of a port the plugin makes: the attachment's tags ([`cni::plumb::attachment_tags`])
/// plus the owner and the node.
pub fn port_tags(req: &Request, node: Option<&str>) -> BTreeMap<String, String> {
    let mut ids = cni::plumb::attachment_tags(req);
    ids.insert(names::OWNER.to_string(), names::OWNER_CNI.to_string());
    if let Some(n) = node {
        ids.insert(names::NODE.to_string(), n.to_string());
    }
    ids
}

/// Watches the port `name` until `pred` holds, or `timeout` passes.
pub async fn wait_port(
    nb: &Client,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&LogicalSwitchPort) -> bool,
) -> Result<LogicalSwitchPort, CniError> {
    let cfg = ReplicaConfig::new(nb::DB).table(MonitorTable::new("Logical_Switch_Port").condition(Condition::eq("name", name)));
    let replica = Replica::start(nb, cfg).await.map_err(|e| db_error("watching the logical switch port", e))?;
    let find =
        |s: &ovsdb::replica::Snapshot| s.rows("Logical_Switch_Port").map(|(_, r)| LogicalSwitchPort::from_row(r)).find(|p| p.name == name);
    match replica.wait_until(timeout, |s| find(s).map(|p| pred(&p)).unwrap_or(false)).await {
        Ok(s) => find(&s).ok_or_else(|| CniError::internal("port vanished")),
        Err(ovsdb::Error::Timeout(_)) => {
            let gone = find(&replica.snapshot()).is_none();
            Err(CniError::try_again_later(if gone {
                format!("logical switch port {name:?} was deleted while waiting for it to {what}")
            } else {
                format!("logical switch port {name:?} did not {what} within {} ms", timeout.as_millis())
            }))
        }
        Err(e) => Err(db_error(&format!("waiting for port {name:?} to {what}"), e)),
    }
}

/// Deletes the port (detaching it from whatever switch holds it). Absent is fine.
pub async fn delete_port(nb: &Client, port: Uuid) -> Result<(), CniError> {
    if let Some(sw) = switch_of(nb, port).await? {
        nb.transact(nb::DB, vec![nb::remove_port(sw.uuid, port)]).await.map_err(|e| db_error("deleting the logical switch port", e))?;
    }
    Ok(())
}

/// Whether this attachment made the port (and so DEL/GC may delete it).
pub fn owned_by_container(port: &LogicalSwitchPort, container_id: &str) -> bool {
    port.external_ids.get(names::OWNER).map(String::as_str) == Some(names::OWNER_CNI)
        && port.external_ids.get(names::CONTAINER_ID).map(String::as_str) == Some(container_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(container: &str, uid: Option<&str>) -> Request {
        let mut args = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web".to_string();
        if let Some(u) = uid {
            args.push_str(&format!(";K8S_POD_UID={u}"));
        }
        let vars = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "net1"),
            ("CNI_PATH", "/opt/cni/bin"),
            ("CNI_ARGS", args.as_str()),
        ];
        let raw = serde_json::json!({"cniVersion": "1.0.0", "name": "red", "type": "kubetron", "nb": "unix:/x"});
        Request {
            env: cni::Env::from_vars(vars).unwrap(),
            config: cni::NetConf::from_value(raw.clone()).unwrap(),
            raw_config: raw,
            prev_result: None,
        }
    }

    fn port(owner: Option<&str>, uid: Option<&str>, container: Option<&str>) -> LogicalSwitchPort {
        let mut p = LogicalSwitchPort { name: "ns_web_net1".into(), ..Default::default() };
        for (k, v) in [(names::OWNER, owner), (names::POD_UID, uid), (names::CONTAINER_ID, container)] {
            if let Some(v) = v {
                p.external_ids.insert(k.to_string(), v.to_string());
            }
        }
        p
    }

    #[test]
    fn existing_ports_of_other_pods_or_containers_are_never_adopted() {
        let cni = Some(names::OWNER_CNI);
        let ctl = Some(names::OWNER_CONTROLLER);
        // A retried ADD of the same container: used.
        assert_eq!(existing(&port(cni, Some("u1"), Some("c1")), &request("c1", Some("u1"))), Existing::Use);
        // Another container (new sandbox) or another pod UID (same-name successor): replaced.
        assert!(matches!(existing(&port(cni, Some("u1"), Some("c0")), &request("c1", Some("u1"))), Existing::Replace { .. }));
        assert!(matches!(
            existing(&port(cni, Some("u0"), Some("c1")), &request("c1", Some("u1"))),
            Existing::Replace { ref old_uid, .. } if old_uid == "u0"
        ));
        assert!(matches!(existing(&port(cni, None, Some("c0")), &request("c1", None)), Existing::Replace { .. }));
        // The controller's port: used for its own pod, refused (code 11, naming the UID) for another.
        assert_eq!(existing(&port(ctl, Some("u1"), None), &request("c1", Some("u1"))), Existing::Use);
        assert_eq!(existing(&port(ctl, Some("u1"), None), &request("c1", None)), Existing::Use);
        match existing(&port(ctl, Some("u0"), None), &request("c1", Some("u1"))) {
            Existing::Refuse(e) => {
                assert_eq!(e.code, cni::ErrorCode::TryAgainLater);
                assert!(e.msg.contains("u0") && e.msg.contains("u1"), "{}", e.msg);
            }
            other => panic!("{other:?}"),
        }
        // An administrator's port (no owner): used as it is.
        assert_eq!(existing(&port(None, Some("u0"), None), &request("c1", Some("u1"))), Existing::Use);
    }

    #[test]
    fn addresses_follow_the_request_then_the_subnet() {
        let s: Ipv4Net = "10.1.0.0/24".parse().unwrap();
        let ip: IpNet = "10.1.0.7/24".parse().unwrap();
        assert_eq!(addresses_for("p", None, &[ip], Some(&s)).unwrap(), "0a:58:0a:01:00:07 10.1.0.7");
        assert_eq!(addresses_for("p", Some("02:00:00:00:00:01"), &[ip], Some(&s)).unwrap(), "02:00:00:00:00:01 10.1.0.7");
        assert_eq!(addresses_for("p", Some("02:00:00:00:00:01"), &[], Some(&s)).unwrap(), "02:00:00:00:00:01 dynamic");
        assert_eq!(addresses_for("p", None, &[], Some(&s)).unwrap(), "dynamic");
        assert_eq!(addresses_for("p", None, &[], None).unwrap(), mac_for_name("p"));
        assert_ne!(mac_for_name("p"), mac_for_name("q"));
        assert_eq!(addresses_for("p", Some("02:00:00:00:00:01"), &[], None).unwrap(), "02:00:00:00:00:01");
        let outside: IpNet = "10.2.0.7/24".parse().unwrap();
        let e = addresses_for("p", None, &[outside], Some(&s)).unwrap_err();
        assert_eq!(e.code, cni::ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("10.1.0.0/24"), "{}", e.msg);
    }
}

//! The Northbound side of an attachment: the logical switch (the network) and the logical switch
//! port (the attachment), found or created, and waited on.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use ovn::addressing::{mac_for_ip, mac_for_name};
use ovn::columns::Model;
use ovn::names;
use ovn::nb::{self, DhcpOptions, LogicalSwitch, LogicalSwitchPort, NewPort};
use ovsdb::datum::Uuid;
use ovsdb::monitor::MonitorTable;
use ovsdb::ops::{Condition, Operation};
use ovsdb::replica::{Replica, ReplicaConfig};
use ovsdb::Client;

use super::conn::db_error;
use crate::{CniError, Request};

/// The logical switch port name for this request: from the pod identity the runtime passes in
/// CNI_ARGS (so the controller and the plugin agree), else from the container ID.
pub fn port_name(req: &Request) -> String {
    let a = &req.env.args;
    match (&a.pod_namespace, &a.pod_name) {
        (Some(ns), Some(pod)) if !ns.is_empty() && !pod.is_empty() => names::pod_port(ns, pod, req.ifname()),
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

/// The port for this attachment and whether this call created it.
pub struct Attached {
    pub port: LogicalSwitchPort,
    pub created: bool,
}

/// Finds the port the controller (or an earlier ADD of this container) made, or creates it.
pub async fn ensure_port(nb: &Client, req: &Request, switch: &LogicalSwitch, name: &str) -> Result<Attached, CniError> {
    if let Some(port) = find_port(nb, name).await? {
        let owner = port.external_ids.get(names::OWNER).map(String::as_str);
        if owner == Some(names::OWNER_CNI) {
            let other = port.external_ids.get(names::CONTAINER_ID).filter(|c| c.as_str() != req.container_id());
            if other.is_some() {
                // A port left by an earlier sandbox of the same pod: take it over.
                nb.transact(
                    nb::DB,
                    vec![Operation::mutate("Logical_Switch_Port").filter(Condition::uuid(port.uuid)).mutation(
                        ovsdb::ops::Mutation::insert("external_ids", ovsdb::datum::Datum::map([(names::CONTAINER_ID, req.container_id())])),
                    )],
                )
                .await
                .map_err(|e| db_error("taking over the logical switch port", e))?;
            }
        }
        if !switch.ports.contains(&port.uuid) {
            return Err(CniError::invalid_config(format!(
                "logical switch port {name:?} exists but belongs to another network than {:?}",
                switch.name
            )));
        }
        return Ok(Attached { port, created: false });
    }

    let req_ips = req.config.requested_ips()?;
    let req_mac = req.config.runtime_config.as_ref().and_then(|r| r.mac.as_deref());
    let subnet = switch.subnet();
    let addresses = addresses_for(name, req_mac, &req_ips, subnet.as_ref())?;
    let dhcp = match &subnet {
        Some(s) => dhcp_for(nb, s).await?.map(|d| d.uuid),
        None => None,
    };
    let mut ids = BTreeMap::new();
    ids.insert(names::OWNER.to_string(), names::OWNER_CNI.to_string());
    ids.insert(names::CONTAINER_ID.to_string(), req.container_id().to_string());
    ids.insert(names::INTERFACE.to_string(), req.ifname().to_string());
    let a = &req.env.args;
    for (k, v) in [(names::POD_NAMESPACE, &a.pod_namespace), (names::POD_NAME, &a.pod_name), (names::POD_UID, &a.pod_uid)] {
        if let Some(v) = v {
            ids.insert(k.to_string(), v.clone());
        }
    }
    let new = NewPort { name: name.to_string(), addresses: vec![addresses], dhcpv4_options: dhcp, external_ids: ids, ..Default::default() };
    let res = nb
        .transact(nb::DB, nb::add_port(switch.uuid, &new, "lsp").to_vec())
        .await
        .map_err(|e| db_error(&format!("creating logical switch port {name:?}"), e))?;
    if res.get(1).and_then(|r| r.count) != Some(1) {
        // The switch vanished between our read and the write; the new port was not attached
        // anywhere, so the database dropped it (ports are not root rows).
        return Err(CniError::try_again_later(format!("logical switch {:?} disappeared while plugging", switch.name)));
    }
    let uuid = res.first().and_then(|r| r.uuid).unwrap_or_else(Uuid::nil);
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
        assert_eq!(e.code, crate::ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("10.1.0.0/24"), "{}", e.msg);
    }
}

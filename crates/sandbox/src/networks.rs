//! The sandbox's networks, made the way an OVN administrator makes them (a logical switch with a
//! subnet and native DHCP), but with kubetron's own OVSDB client.

use std::collections::BTreeMap;

use ovn::nb;
use ovsdb::ops::{Condition, Operation};
use ovsdb::Client;

use crate::Error;

/// A network to make.
#[derive(Debug, Clone)]
pub struct NetworkDef {
    pub name: &'static str,
    /// /24 prefix, e.g. `10.10.1`.
    pub prefix: &'static str,
}

/// The sandbox's networks.
pub const NETWORKS: [NetworkDef; 2] = [NetworkDef { name: "red", prefix: "10.10.1" }, NetworkDef { name: "blue", prefix: "10.10.2" }];

fn map(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Makes every network that does not exist yet, each in one transaction.
pub async fn ensure(nb: &Client) -> Result<(), Error> {
    for net in &NETWORKS {
        let found = nb.transact(nb::DB, vec![Operation::select("Logical_Switch").filter(Condition::eq("name", net.name))]).await?;
        if found.first().and_then(|r| r.rows.as_ref()).is_some_and(|rows| !rows.is_empty()) {
            continue;
        }
        let p = net.prefix;
        let cidr = format!("{p}.0/24");
        let dhcp = map(&[
            ("lease_time", "3600".into()),
            ("router", format!("{p}.1")),
            ("server_id", format!("{p}.1")),
            ("server_mac", "0a:00:00:00:00:01".into()),
            ("mtu", "1400".into()),
        ]);
        let other = map(&[("subnet", cidr.clone()), ("exclude_ips", format!("{p}.1..{p}.9"))]);
        let ids = map(&[(ovn::names::EXPOSE_NAMESPACES, "default".into())]);
        nb.transact(
            nb::DB,
            vec![nb::create_dhcp_options(&cidr, &dhcp, &BTreeMap::new(), "dhcp"), nb::create_switch(net.name, &other, &ids, "ls")],
        )
        .await?;
    }
    Ok(())
}

/// The same networks made in Neutron through its API (a network and a /24 subnet with DHCP each,
/// `.1` the gateway), tagged `kubetron:expose` and `kubetron:ns=default` for the controller's NAD
/// sync. Returns the Neutron network IDs by name.
pub async fn ensure_in_neutron(client: &neutron::Client) -> Result<BTreeMap<String, String>, Error> {
    let step = |what: &str, e: neutron::Error| Error::Step(format!("Neutron: {what}: {e}"));
    let mut out = BTreeMap::new();
    let existing = client.networks("").await.map_err(|e| step("listing networks", e))?;
    for net in &NETWORKS {
        let id = match existing.iter().find(|n| n.name == net.name) {
            Some(n) => n.id.clone(),
            None => {
                let n = client.create_network(net.name, serde_json::json!({})).await.map_err(|e| step("creating a network", e))?;
                let p = net.prefix;
                let extra = serde_json::json!({"gateway_ip": format!("{p}.1"), "allocation_pools": [{"start": format!("{p}.10"), "end": format!("{p}.250")}]});
                client.create_subnet(&n.id, &format!("{p}.0/24"), extra).await.map_err(|e| step("creating a subnet", e))?;
                n.id
            }
        };
        client.set_network_tags(&id, &["kubetron:expose", "kubetron:ns=default"]).await.map_err(|e| step("tagging a network", e))?;
        out.insert(net.name.to_string(), id);
    }
    Ok(out)
}

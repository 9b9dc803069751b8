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

//! Which Neutron networks are exposed, and as what (pure; no I/O): the Neutron backend's
//! counterpart of [`super::marked_switches`], feeding the same [`super::desired_nads`].
//!
//! A network is marked with the tag [`EXPOSE_TAG`]; `kubetron:ns=<namespace>` tags (repeatable, or
//! `kubetron:ns=*`) say where; `kubetron:nad=<name>` names the NAD (default: the network's name
//! made a valid object name). Marked without a namespace tag: skipped (logged). The network's
//! logical switch is ML2/OVN's `neutron-<network ID>`; its first IPv4 subnet goes into the config
//! (the webhook checks static addresses against it); Neutron allocates the addresses, so no
//! `exclude_ips` and no persistent IPs (IPAMClaims are the `ovn` backend's); a network on a
//! physical network (`provider:physical_network`) is node-bound like a localnet switch.

use std::collections::BTreeSet;

use neutron::{Network, Subnet};

use super::desired::{nad_name, MarkedSwitch, Targets};

/// The tag that exposes a network.
pub const EXPOSE_TAG: &str = "kubetron:expose";
/// Prefix of the tags naming namespaces (`kubetron:ns=team-a`, `kubetron:ns=*`).
pub const NAMESPACE_TAG: &str = "kubetron:ns=";
/// Prefix of the tag naming the NAD.
pub const NAD_TAG: &str = "kubetron:nad=";
/// The query that lists the marked networks.
pub const EXPOSED_QUERY: &str = "tags=kubetron:expose";

/// ML2/OVN's logical switch of a Neutron network.
pub fn switch_of(network_id: &str) -> String {
    format!("neutron-{network_id}")
}

/// The marked networks among `networks` (with their `subnets`), sorted by switch name.
pub fn marked_networks(networks: &[Network], subnets: &[Subnet]) -> Vec<MarkedSwitch> {
    let mut out = Vec::new();
    for n in networks.iter().filter(|n| n.tags.iter().any(|t| t == EXPOSE_TAG)) {
        let namespaces: BTreeSet<&str> = n.tags.iter().filter_map(|t| t.strip_prefix(NAMESPACE_TAG)).collect();
        if namespaces.is_empty() {
            tracing::warn!(network = %n.id, name = %n.name, "tagged {EXPOSE_TAG} without a {NAMESPACE_TAG}<namespace> tag: not exposed");
            continue;
        }
        let targets = Targets::parse(&namespaces.into_iter().collect::<Vec<_>>().join(","));
        let named = n.tags.iter().find_map(|t| t.strip_prefix(NAD_TAG)).and_then(nad_name);
        let Some(nad) = named.or_else(|| nad_name(&n.name)) else {
            tracing::warn!(network = %n.id, name = %n.name, "marked for NAD sync, but no valid NAD name can be made from it");
            continue;
        };
        let subnet = subnets.iter().filter(|s| s.network_id == n.id && s.ip_version == 4).map(|s| s.cidr.clone()).next();
        let physnet = n.physical_network.clone().filter(|p| !p.is_empty());
        let vlan = (n.network_type.as_deref() == Some("vlan")).then_some(n.segmentation_id).flatten().map(i64::from);
        out.push(MarkedSwitch {
            switch: switch_of(&n.id),
            nad_name: nad,
            targets,
            physnet,
            vlan,
            subnet,
            exclude_ips: None,
            persistent_ips: false,
            network_id: Some(n.id.clone()),
        });
    }
    out.sort_by(|a, b| a.switch.cmp(&b.switch));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn network(v: serde_json::Value) -> Network {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tags_say_what_is_exposed_where_and_as_what() {
        let nets = vec![
            network(
                json!({"id": "n1", "name": "Red Net", "tags": ["kubetron:expose", "kubetron:ns=team-a", "kubetron:ns=team-b"], "mtu": 1442}),
            ),
            network(json!({"id": "n2", "name": "blue", "tags": ["kubetron:expose", "kubetron:ns=*", "kubetron:nad=blue-net"]})),
            network(json!({"id": "n3", "name": "phys", "tags": ["kubetron:expose", "kubetron:ns=team-a"],
                           "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 120})),
            network(json!({"id": "n4", "name": "no-namespace", "tags": ["kubetron:expose"]})),
            network(json!({"id": "n5", "name": "unmarked", "tags": ["kubetron:ns=team-a"]})),
        ];
        let subnets: Vec<Subnet> = serde_json::from_value(json!([
            {"id": "s6", "network_id": "n1", "cidr": "fd00::/64", "ip_version": 6},
            {"id": "s1", "network_id": "n1", "cidr": "10.1.0.0/24", "ip_version": 4, "gateway_ip": "10.1.0.1"},
        ]))
        .unwrap();
        let m = marked_networks(&nets, &subnets);
        assert_eq!(m.iter().map(|s| s.switch.as_str()).collect::<Vec<_>>(), ["neutron-n1", "neutron-n2", "neutron-n3"]);
        assert_eq!(m[0].nad_name, "red-net");
        assert_eq!(m[0].targets, Targets::Some(["team-a".to_string(), "team-b".to_string()].into()));
        assert_eq!((m[0].subnet.as_deref(), m[0].exclude_ips.as_deref(), m[0].persistent_ips), (Some("10.1.0.0/24"), None, false));
        assert_eq!((m[1].nad_name.as_str(), &m[1].targets, m[1].subnet.as_deref()), ("blue-net", &Targets::All, None));
        assert_eq!((m[2].physnet.as_deref(), m[2].vlan), (Some("physnet1"), Some(120)));
        // Through the same NAD rendering as the ovn backend's switches.
        let nads = super::super::desired_nads(&m, &["team-a".into(), "team-c".into()], &super::super::SyncSettings::new());
        let names: Vec<(String, String)> =
            nads.iter().map(|n| (n.metadata.namespace.clone().unwrap(), n.metadata.name.clone().unwrap())).collect();
        assert!(names.contains(&("team-b".into(), "red-net".into())) && names.contains(&("team-c".into(), "blue-net".into())), "{names:?}");
        let phys = nads.iter().find(|n| n.metadata.name.as_deref() == Some("phys")).unwrap();
        let cfg = phys.kubetron_config().unwrap().unwrap();
        assert_eq!(cfg.logical_switch(), "neutron-n3");
        assert!(!cfg.allow_persistent_ips);
        assert_eq!(
            phys.metadata.annotations.as_ref().unwrap().get(crate::nad::RESOURCE_NAME_ANNOTATION).map(String::as_str),
            Some("kubetron.io/physnet1")
        );
    }
}

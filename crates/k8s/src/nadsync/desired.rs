//! Which NADs the marked switches call for (pure; no I/O).

use std::collections::{BTreeMap, BTreeSet};

use model::netconf::{Capabilities, KubetronNetConf};
use ovn::columns::{optional_i64, string_map};
use ovn::names::EXPOSE_NAMESPACES;
use ovsdb::datum::Atom;
use serde_json::{Map, Value};

use super::{SWITCH_ANNOTATION, SYNCED_LABEL, SYNCED_VALUE};
use crate::controller::NbView;
use crate::nad::{new_nad, NetworkAttachmentDefinition, RESOURCE_NAME_ANNOTATION, RESOURCE_PREFIX};

/// External id that names the NAD of a marked switch (default: [`nad_name`] of the switch name).
pub const NAD_NAME_KEY: &str = "kubetron.io/nad-name";

/// What goes into every synced NAD's config besides the switch. No Northbound address: synced
/// NADs are cluster-mode networks (no `mode` and no `nb` means cluster mode), where the nodes
/// never reach the NB; only the controller does.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    pub cni_version: String,
    /// The value of [`SYNCED_LABEL`] on the NADs made ([`SYNCED_VALUE`] or
    /// [`super::SYNCED_NEUTRON`]): where the networks came from.
    pub source: &'static str,
}

impl SyncSettings {
    pub fn new() -> SyncSettings {
        SyncSettings { cni_version: "1.0.0".into(), source: SYNCED_VALUE }
    }
}

impl Default for SyncSettings {
    fn default() -> SyncSettings {
        SyncSettings::new()
    }
}

/// The namespaces a switch is exposed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    All,
    Some(BTreeSet<String>),
}

impl Targets {
    /// `"ns1, ns2"` or `"*"`; empty entries are ignored.
    pub fn parse(value: &str) -> Targets {
        let names: BTreeSet<String> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        if names.contains("*") {
            Targets::All
        } else {
            Targets::Some(names)
        }
    }
    /// Whether namespace `ns` is one of them.
    pub fn includes(&self, ns: &str) -> bool {
        match self {
            Targets::All => true,
            Targets::Some(names) => names.contains(ns),
        }
    }
}

/// A switch marked for sync, as read from the Northbound view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedSwitch {
    pub switch: String,
    pub nad_name: String,
    pub targets: Targets,
    /// `options:network_name` of its localnet port: a physical network.
    pub physnet: Option<String>,
    /// The localnet port's VLAN `tag`.
    pub vlan: Option<i64>,
    /// `other_config:subnet` and `other_config:exclude_ips`: copied into the NAD config so the
    /// webhook can refuse static addresses the network cannot give.
    pub subnet: Option<String>,
    pub exclude_ips: Option<String>,
    /// Whether an IPAMClaim's addresses may live in a port of their own on it (NAD
    /// `allowPersistentIPs`): switches with a subnet kubetron allocates from.
    pub persistent_ips: bool,
    /// The Neutron network behind the switch (NAD config `network_id`), for the neutron backend.
    pub network_id: Option<String>,
}

/// A switch name made a valid object name (RFC 1123 subdomain): lower case, other characters to
/// `-`, trimmed to alphanumerics at both ends, at most 253 characters; `None` when nothing is left.
pub fn nad_name(switch: &str) -> Option<String> {
    let s: String = switch
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .take(253)
        .collect();
    let s = s.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    (!s.is_empty()).then_some(s)
}

/// The marked switches, sorted by name. Switches whose name gives no valid NAD name are skipped
/// with a warning.
pub fn marked_switches(view: &NbView) -> Vec<MarkedSwitch> {
    // Physical networks: switch uuid -> (network_name, tag) of its localnet port.
    let localnet: Vec<(ovsdb::datum::Uuid, Option<String>, Option<i64>)> = view
        .ports_of_type("localnet")
        .into_iter()
        .map(|(u, r)| (u, r.map_str("options", "network_name").map(str::to_string), optional_i64(&r, "tag")))
        .collect();
    let mut out = Vec::new();
    for (_, row) in view.switches_rows() {
        let ids = string_map(row, "external_ids");
        let Some(targets) = ids.get(EXPOSE_NAMESPACES).map(|v| Targets::parse(v)) else { continue };
        let switch = row.str("name").to_string();
        let Some(nad_name) = ids.get(NAD_NAME_KEY).and_then(|n| nad_name(n)).or_else(|| nad_name(&switch)) else {
            tracing::warn!(%switch, "marked for NAD sync, but no valid NAD name can be made from it");
            continue;
        };
        let ports = row.get("ports").and_then(|d| d.as_set()).unwrap_or(&[]);
        let (physnet, vlan) = localnet
            .iter()
            .find(|(u, _, _)| ports.binary_search(&Atom::Uuid(*u)).is_ok())
            .map(|(_, n, t)| (n.clone(), *t))
            .unwrap_or((None, None));
        let other = string_map(row, "other_config");
        let subnet = other.get("subnet").filter(|v| !v.is_empty()).cloned();
        let exclude_ips = other.get("exclude_ips").filter(|v| !v.is_empty()).cloned();
        let persistent_ips = subnet.is_some();
        out.push(MarkedSwitch { switch, nad_name, targets, physnet, vlan, subnet, exclude_ips, persistent_ips, network_id: None });
    }
    out.sort_by(|a, b| a.switch.cmp(&b.switch));
    out
}

/// The NADs the marked switches call for, sorted by namespace and name. `all_namespaces` are the
/// namespaces `*` expands to. When two switches ask for the same NAD, the first by switch name wins.
pub fn desired_nads(switches: &[MarkedSwitch], all_namespaces: &[String], settings: &SyncSettings) -> Vec<NetworkAttachmentDefinition> {
    let mut out: BTreeMap<(String, String), NetworkAttachmentDefinition> = BTreeMap::new();
    for s in switches {
        let namespaces: Vec<&String> = match &s.targets {
            Targets::All => all_namespaces.iter().collect(),
            Targets::Some(n) => n.iter().collect(),
        };
        let kubetron = KubetronNetConf {
            logical_switch: Some(s.switch.clone()),
            capabilities: Some(Capabilities { ips: true, mac: true }.to_map()),
            subnet: s.subnet.clone(),
            exclude_ips: s.exclude_ips.clone(),
            allow_persistent_ips: s.persistent_ips,
            network_id: s.network_id.clone(),
            ..KubetronNetConf::default()
        };
        let mut config = Map::from_iter([
            ("cniVersion".to_string(), Value::from(settings.cni_version.as_str())),
            ("name".to_string(), Value::from(s.nad_name.as_str())),
        ]);
        config.extend(kubetron.to_plugin());
        let config = Value::Object(config).to_string();
        let resource = s.physnet.as_ref().map(|p| format!("{RESOURCE_PREFIX}{p}"));
        let mut annotations = vec![(SWITCH_ANNOTATION, s.switch.as_str())];
        if let Some(r) = &resource {
            annotations.push((RESOURCE_NAME_ANNOTATION, r.as_str()));
        }
        for ns in namespaces {
            let key = (ns.clone(), s.nad_name.clone());
            if out.contains_key(&key) {
                tracing::warn!(namespace = %ns, nad = %s.nad_name, switch = %s.switch, "two marked switches want the same NAD; keeping the first");
                continue;
            }
            let mut nad = new_nad(ns, &s.nad_name, &config, &annotations);
            nad.metadata.labels = Some([(SYNCED_LABEL.to_string(), settings.source.to_string())].into());
            out.insert(key, nad);
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nad_names_are_valid_object_names() {
        assert_eq!(nad_name("red").as_deref(), Some("red"));
        assert_eq!(nad_name("Tenant_A.Net").as_deref(), Some("tenant-a.net"));
        assert_eq!(nad_name("--x--").as_deref(), Some("x"));
        assert_eq!(nad_name("_"), None);
        assert_eq!(nad_name(""), None);
        assert_eq!(nad_name(&"a".repeat(300)).map(|s| s.len()), Some(253));
    }

    #[test]
    fn targets_parse() {
        assert_eq!(Targets::parse("a, b,,a "), Targets::Some(["a".to_string(), "b".to_string()].into()));
        assert_eq!(Targets::parse("a,*"), Targets::All);
        assert_eq!(Targets::parse(""), Targets::Some(Default::default()));
    }

    #[test]
    fn desired_nads_expand_targets_and_mark_physical_networks() {
        let settings = SyncSettings::new();
        let switches = vec![
            MarkedSwitch {
                switch: "net_a".into(),
                nad_name: "net-a".into(),
                targets: Targets::Some(["x".to_string(), "y".to_string()].into()),
                physnet: None,
                vlan: None,
                subnet: Some("10.1.0.0/24".into()),
                exclude_ips: Some("10.1.0.1..10.1.0.9".into()),
                persistent_ips: true,
                network_id: None,
            },
            MarkedSwitch {
                switch: "phys".into(),
                nad_name: "phys".into(),
                targets: Targets::All,
                physnet: Some("physnet1".into()),
                vlan: Some(100),
                subnet: None,
                exclude_ips: None,
                persistent_ips: false,
                network_id: None,
            },
            // Same NAD name as the first in namespace x: the first by switch name wins.
            MarkedSwitch {
                switch: "net_a_too".into(),
                nad_name: "net-a".into(),
                targets: Targets::Some(["x".to_string()].into()),
                physnet: None,
                vlan: None,
                subnet: None,
                exclude_ips: None,
                persistent_ips: false,
                network_id: None,
            },
        ];
        let nads = desired_nads(&switches, &["x".to_string(), "z".to_string()], &settings);
        let ids: Vec<String> =
            nads.iter().map(|n| format!("{}/{}", n.metadata.namespace.as_deref().unwrap(), n.metadata.name.as_deref().unwrap())).collect();
        assert_eq!(ids, ["x/net-a", "x/phys", "y/net-a", "z/phys"]);
        let xa = &nads[0];
        // The shape NADs written by the sync have (a changed string rewrites them all once: NADs of
        // switches with a subnet gained "allowPersistentIPs" for IPAMClaims).
        assert_eq!(
            xa.spec.config,
            r#"{"cniVersion":"1.0.0","name":"net-a","type":"kubetron","logical_switch":"net_a","capabilities":{"ips":true,"mac":true},"subnet":"10.1.0.0/24","exclude_ips":"10.1.0.1..10.1.0.9","allowPersistentIPs":true}"#
        );
        let cfg = xa.kubetron_config().unwrap().unwrap();
        assert_eq!(cfg.logical_switch(), "net_a");
        assert!(cfg.kubetron.granted().ips && cfg.kubetron.granted().mac);
        // Cluster mode: neither `nb` nor `mode` (their absence is what selects it).
        assert_eq!((&cfg.kubetron.nb, cfg.kubetron.mode), (&None, None), "{}", xa.spec.config);
        assert_eq!(cfg.kubetron.subnet.as_deref(), Some("10.1.0.0/24"));
        assert_eq!(cfg.kubetron.exclude_ips.as_deref(), Some("10.1.0.1..10.1.0.9"));
        assert!(cfg.allow_persistent_ips);
        assert!(nads[1].kubetron_config().unwrap().unwrap().kubetron.subnet.is_none());
        assert!(!nads[1].kubetron_config().unwrap().unwrap().allow_persistent_ips, "no subnet: no persistent IPs");
        assert_eq!(xa.resource_name(), None);
        assert_eq!(xa.metadata.labels.as_ref().unwrap().get(SYNCED_LABEL).map(String::as_str), Some(SYNCED_VALUE));
        assert_eq!(nads[1].resource_name(), Some("kubetron.io/physnet1"));
        assert_eq!(nads[1].physical_network(), Some("physnet1"));
    }
}

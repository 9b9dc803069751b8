//! Per-pod status annotations: their types, parsing and merging (the writes, through the API
//! server, are `k8s::status::write_pod_annotations`).
//!
//! - `k8s.v1.cni.cncf.io/network-status` (NPWG): a JSON list of [`NetworkStatus`]. Other writers
//!   (Multus writes the cluster network's `eth0` entry, and entries of other plugins' networks)
//!   share it: kubetron only ever replaces the entries of its own interfaces
//!   ([`merge_network_status`]) and writes through the `pods/status` subresource with the pod's
//!   UID and resourceVersion as preconditions, re-reading and re-merging on conflict.
//! - `kubetron.io/interfaces`: the hand-off to the node ([`crate::handoff`], version 1), written
//!   by the controller when it has created the logical ports; the node side plugs the pod from it.
//!
//! `"default": true` is reserved by the spec for the cluster-wide default network, so kubetron
//! never writes it. A kubetron attachment that carries the pod's default route (`default-route`
//! in the request) lists its gateways instead, under `gateway` (what the NPWG client library
//! and Multus write) and `default-route` (the request key's name).

use std::collections::{BTreeMap, BTreeSet};

use crate::handoff::Attachment;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// NPWG network status annotation.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// Kubetron's hand-off annotation (versioned: [`crate::handoff`]).
pub const INTERFACES_ANNOTATION: &str = crate::handoff::ANNOTATION;

/// One entry of `k8s.v1.cni.cncf.io/network-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NetworkStatus {
    /// Network name, `namespace/name` for NADs.
    pub name: String,
    /// Interface name in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Addresses (without prefix in NPWG examples; CIDR accepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// True only for the cluster-wide default network's entry (never written by kubetron).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// Gateways of the default route through this interface (NPWG client `gateway`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<String>,
    /// The same gateways under the request key's name, `default-route`.
    #[serde(default, rename = "default-route", skip_serializing_if = "Vec::is_empty")]
    pub default_route: Vec<String>,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Device information (NPWG device-info spec), kept as JSON.
    #[serde(default, rename = "device-info", skip_serializing_if = "Option::is_none")]
    pub device_info: Option<serde_json::Value>,
}

/// DNS settings of a [`NetworkStatus`]: the CNI result's `dns` object (the NPWG spec takes it
/// from there), also the CNI plugin's result and network-configuration type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_none() && self.search.is_empty() && self.options.is_empty()
    }
}

/// The `network-status` entry of a handed-off attachment (addresses without prefix, as Multus
/// writes them; no default-route gateways: see `controller::status::network_status`).
pub fn attachment_network_status(a: &Attachment) -> NetworkStatus {
    NetworkStatus {
        name: a.network.clone(),
        interface: Some(a.interface.clone()),
        ips: a.ips.iter().map(|ip| ip.addr().to_string()).collect(),
        mac: Some(a.mac.clone()),
        ..Default::default()
    }
}

/// A status annotation that does not parse.
#[derive(Debug, Error)]
#[error("annotation {annotation} is not a valid JSON list: {source}")]
pub struct StatusParseError {
    /// Which annotation.
    pub annotation: &'static str,
    /// The JSON error.
    #[source]
    pub source: serde_json::Error,
}

/// Parse a `network-status` annotation value.
pub fn parse_network_status(value: &str) -> Result<Vec<NetworkStatus>, StatusParseError> {
    serde_json::from_str(value).map_err(|source| StatusParseError { annotation: NETWORK_STATUS_ANNOTATION, source })
}

/// Render a list as an annotation value (compact JSON).
pub fn to_annotation<T: Serialize>(items: &[T]) -> String {
    // Serializing these plain structs cannot fail; fall back to an empty list regardless.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
}

/// Merges kubetron's entries into the current `network-status` value.
///
/// An entry is kubetron's when its `interface` is in `owned` (the pod's kubetron interfaces,
/// now and as last recorded); every other entry (Multus's `eth0`, other plugins', entries
/// without an interface, entries that are not objects) is kept verbatim and in place. Each of
/// `ours` replaces, in place, the entry of its interface; kubetron entries of interfaces not in
/// `ours` are dropped; the rest of `ours` is appended in order. A current value that is not a
/// JSON list cannot be merged into and is replaced.
///
/// Returns `None` when the result is an empty list (the annotation should be removed).
pub fn merge_network_status(current: Option<&str>, ours: &[NetworkStatus], owned: &BTreeSet<String>) -> Option<String> {
    let existing: Vec<Value> = match current.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Array(items))) => items,
        Some(Ok(_)) | Some(Err(_)) => {
            tracing::warn!("annotation {NETWORK_STATUS_ANNOTATION} is not a JSON list; replacing it");
            Vec::new()
        }
        None => Vec::new(),
    };
    let ours_by_if: BTreeMap<&str, &NetworkStatus> = ours.iter().filter_map(|s| Some((s.interface.as_deref()?, s))).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut out: Vec<Value> = Vec::with_capacity(existing.len() + ours.len());
    for entry in existing {
        let iface = entry.get("interface").and_then(Value::as_str).map(str::to_string);
        let Some(iface) = iface.filter(|i| owned.contains(i) || ours_by_if.contains_key(i.as_str())) else {
            out.push(entry);
            continue;
        };
        // One of ours: replaced by the new entry (first occurrence only) or dropped.
        if let Some((key, new)) = ours_by_if.get_key_value(iface.as_str()) {
            if placed.insert(key) {
                out.push(serde_json::to_value(new).unwrap_or(Value::Null));
            }
        }
    }
    for s in ours {
        match s.interface.as_deref() {
            Some(i) if placed.contains(i) => {}
            _ => out.push(serde_json::to_value(s).unwrap_or(Value::Null)),
        }
    }
    out.retain(|v| !v.is_null());
    if out.is_empty() {
        return None;
    }
    // Unchanged content keeps its text (no rewrite of another writer's formatting).
    if let Some(cur) = current.filter(|c| serde_json::from_str::<Value>(c).ok() == Some(Value::Array(out.clone()))) {
        return Some(cur.to_string());
    }
    Some(serde_json::to_string(&out).unwrap_or_else(|_| "[]".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npwg_example_parses() {
        // Shape of the NPWG spec's example.
        let v = r#"[{"name":"cbr0","interface":"eth0","ips":["10.1.1.2"],"mac":"0a:58:0a:01:01:02","default":true,"dns":{}},
                   {"name":"ns1/macvlan-conf","interface":"net1","ips":["192.168.100.2"],"mac":"c2:11:22:33:44:55",
                    "dns":{"nameservers":["10.1.1.1"],"search":["a.b"]},
                    "device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:18:02.5"}}}]"#;
        let s = parse_network_status(v).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s[0].default);
        assert!(!s[1].default);
        assert_eq!(s[1].dns.as_ref().unwrap().nameservers, vec!["10.1.1.1"]);
        assert_eq!(s[1].device_info.as_ref().unwrap()["type"], "pci");
        let again = parse_network_status(&to_annotation(&s)).unwrap();
        assert_eq!(again, s);
        // `default: false` is omitted.
        assert!(!to_annotation(&s[1..]).contains("\"default\""));
    }

    #[test]
    fn attachment_status_drops_prefixes_and_claims_no_default() {
        let a = Attachment {
            interface: "net1".into(),
            network: "ns/blue".into(),
            cni_network: "blue".into(),
            logical_switch: "blue".into(),
            logical_port: "ns_pod_net1".into(),
            mac: "0a:00:00:00:00:01".into(),
            ips: vec!["10.1.1.5/24".parse().unwrap()],
            gateways: vec!["10.1.1.1".parse().unwrap()],
            routes: vec![],
            mtu: 1400,
            addressing: crate::handoff::Addressing::Static,
        };
        let st = attachment_network_status(&a);
        assert_eq!(st.name, "ns/blue");
        assert_eq!(st.interface.as_deref(), Some("net1"));
        assert_eq!(st.ips, vec!["10.1.1.5"]);
        assert_eq!(st.mac.as_deref(), Some("0a:00:00:00:00:01"));
        assert!(!st.default && st.gateway.is_empty());
    }

    fn ours(iface: &str, ip: &str) -> NetworkStatus {
        NetworkStatus {
            name: "ns/blue".into(),
            interface: Some(iface.into()),
            ips: vec![ip.into()],
            mac: Some("0a:00:00:00:00:01".into()),
            ..Default::default()
        }
    }

    fn owned(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn entries(v: &str) -> Vec<Value> {
        match serde_json::from_str(v).unwrap() {
            Value::Array(a) => a,
            other => panic!("{other}"),
        }
    }

    const MULTUS: &str = r#"[
      {"name": "cluster", "interface": "eth0", "ips": ["10.244.0.5"], "mac": "0a:58:0a:f4:00:05", "default": true, "dns": {}, "mtu": 1450},
      {"name": "ns/macvlan", "interface": "net9", "ips": ["192.168.1.5"], "org.example.key": 1},
      "not-an-object",
      {"name": "no-interface"}
    ]"#;

    #[test]
    fn merge_keeps_foreign_entries_verbatim_and_in_place() {
        let merged = merge_network_status(Some(MULTUS), &[ours("net1", "10.1.0.5")], &owned(&["net1"])).unwrap();
        let got = entries(&merged);
        let before = entries(MULTUS);
        assert_eq!(got.len(), 5, "{merged}");
        // Foreign entries unchanged (unknown keys such as mtu and dotted keys included), in their places.
        assert_eq!(&got[..4], &before[..], "{merged}");
        assert_eq!(got[4]["interface"], "net1");
        assert_eq!(got[4]["ips"][0], "10.1.0.5");
        assert!(got[4].get("default").is_none(), "kubetron never writes default");
    }

    #[test]
    fn merge_replaces_ours_in_place_and_drops_stale_ones() {
        let current = r#"[{"name":"ns/blue","interface":"net1","ips":["10.1.0.4"],"default":true},
                          {"name":"cluster","interface":"eth0","default":true},
                          {"name":"ns/blue","interface":"net2","ips":["10.1.0.6"]},
                          {"name":"ns/blue","interface":"net1","ips":["10.1.0.4"]}]"#;
        // net1 replaced where it was (its duplicate dropped), net2 no longer ours -> dropped, net3 appended.
        let merged = merge_network_status(Some(current), &[ours("net3", "10.1.0.7"), ours("net1", "10.1.0.5")], &owned(&["net1", "net2"]));
        let got = entries(&merged.unwrap());
        let ifaces: Vec<&str> = got.iter().map(|e| e["interface"].as_str().unwrap()).collect();
        assert_eq!(ifaces, vec!["net1", "eth0", "net3"]);
        assert_eq!(got[0]["ips"][0], "10.1.0.5");
        assert!(got[0].get("default").is_none());
        assert_eq!(got[1]["default"], true, "the cluster network's entry keeps its default");
        // Merging again is stable (same order, same text).
        let once =
            merge_network_status(Some(current), &[ours("net3", "10.1.0.7"), ours("net1", "10.1.0.5")], &owned(&["net1", "net2"])).unwrap();
        let twice =
            merge_network_status(Some(&once), &[ours("net3", "10.1.0.7"), ours("net1", "10.1.0.5")], &owned(&["net1", "net3"])).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn merge_edge_cases() {
        // Nothing there yet: ours in order.
        let got = entries(&merge_network_status(None, &[ours("net2", "a"), ours("net1", "b")], &owned(&[])).unwrap());
        assert_eq!(got.iter().map(|e| e["interface"].as_str().unwrap()).collect::<Vec<_>>(), vec!["net2", "net1"]);
        // Removing all of ours leaves the others; removing the last entry removes the annotation.
        let only_ours = r#"[{"name":"ns/blue","interface":"net1"}]"#;
        assert_eq!(merge_network_status(Some(only_ours), &[], &owned(&["net1"])), None);
        let left = merge_network_status(Some(MULTUS), &[], &owned(&["net1"])).unwrap();
        assert_eq!(left, MULTUS, "nothing of ours: the other writer's text is kept as it is");
        // Not a list: replaced.
        let got = entries(&merge_network_status(Some("{oops"), &[ours("net1", "a")], &owned(&[])).unwrap());
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn default_route_entry_shape() {
        let s = NetworkStatus { gateway: vec!["10.1.0.1".into()], default_route: vec!["10.1.0.1".into()], ..ours("net1", "10.1.0.5") };
        let v: Value = serde_json::from_str(&to_annotation(&[s])).unwrap();
        assert_eq!(v[0]["gateway"], serde_json::json!(["10.1.0.1"]));
        assert_eq!(v[0]["default-route"], serde_json::json!(["10.1.0.1"]));
        assert!(v[0].get("default").is_none());
    }

    #[test]
    fn bad_values_are_errors() {
        let e = parse_network_status("{\"interface\":1}").unwrap_err();
        assert!(e.to_string().contains(NETWORK_STATUS_ANNOTATION));
        assert!(parse_network_status("[{\"interface\":\"x\"}]").is_err(), "name is required");
    }
}

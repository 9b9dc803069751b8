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
//! `"default": true` is reserved by the spec for the cluster-wide default network: kubetron's own
//! attachments never carry it. One that carries the pod's default route (`default-route` in the
//! request) lists its gateways instead, under `gateway` (what the NPWG client library and Multus
//! write) and `default-route` (the request key's name).
//!
//! The cluster network's entry (`eth0`, `"default": true`) is Multus's to write. Without Multus
//! (chained mode) nobody writes it, so the controller can be told the cluster network's name
//! (`kubetron controller --default-network-name`) and then writes it itself ([`ClusterNetwork`]),
//! by this rule ([`merge_network_status_with`]):
//!
//! - the entry is `{"name": <name>, "interface": "eth0", "ips": <the pod's status.podIPs>,
//!   "default": true, "dns": {}}`, always first; it is written only once the pod has IPs (until
//!   then there is none), and only along with kubetron's own entries (pods with kubetron networks);
//! - an entry is kubetron's eth0 entry when it has exactly that shape: no keys but those five,
//!   `interface` `eth0`, `default` true, `dns` absent or empty, and the configured name. It is
//!   replaced on every write (the pod's IPs changed: new IPs) and dropped when the pod has no IPs
//!   or no kubetron networks any more;
//! - any other entry with `"interface": "eth0"` or `"default": true` (Multus's, another writer's)
//!   is foreign and wins: it is kept as written, and while one exists kubetron writes no eth0 entry
//!   of its own (and drops the one it wrote before), so there is never a second one;
//! - without the setting kubetron never writes, replaces or drops any eth0 or default entry.

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
    /// True only for the cluster-wide default network's entry (kubetron writes it only as
    /// [`ClusterNetwork`]'s entry, see the module doc).
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

/// The interface name the container runtime gives the cluster network in every pod.
pub const CLUSTER_INTERFACE: &str = "eth0";

/// The keys of kubetron's cluster network entry (the module doc's rule).
const CLUSTER_ENTRY_KEYS: &[&str] = &["name", "interface", "ips", "default", "dns"];

/// The cluster network's `network-status` entry that kubetron writes for a pod when it is told
/// the network's name (chained mode without Multus; the rule is in the module doc).
#[derive(Debug, Clone, Copy)]
pub struct ClusterNetwork<'a> {
    /// The cluster default network's name (its conflist's `name`).
    pub name: &'a str,
    /// The pod's IPs (`status.podIPs`); empty until the kubelet has reported them.
    pub ips: &'a [String],
}

impl ClusterNetwork<'_> {
    /// The entry to write: `None` while the pod has no IPs.
    pub fn entry(&self) -> Option<NetworkStatus> {
        (!self.ips.is_empty()).then(|| NetworkStatus {
            name: self.name.to_string(),
            interface: Some(CLUSTER_INTERFACE.to_string()),
            ips: self.ips.to_vec(),
            default: true,
            dns: Some(Dns::default()),
            ..Default::default()
        })
    }

    /// True when `v` is an entry of the shape kubetron writes for this network (kubetron's,
    /// replaced on every write).
    pub fn is_ours(&self, v: &Value) -> bool {
        let Value::Object(m) = v else { return false };
        m.keys().all(|k| CLUSTER_ENTRY_KEYS.contains(&k.as_str()))
            && m.get("name").and_then(Value::as_str) == Some(self.name)
            && m.get("interface").and_then(Value::as_str) == Some(CLUSTER_INTERFACE)
            && m.get("default") == Some(&Value::Bool(true))
            && m.get("dns").is_none_or(|d| d.as_object().is_some_and(|o| o.is_empty()))
    }
}

/// True when `v` is an entry of the cluster network: `"interface": "eth0"` or `"default": true`.
fn is_cluster_entry(v: &Value) -> bool {
    v.get("interface").and_then(Value::as_str) == Some(CLUSTER_INTERFACE) || v.get("default") == Some(&Value::Bool(true))
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
    merge_network_status_with(current, ours, owned, None)
}

/// [`merge_network_status`], and with `cluster` kubetron's entry of the cluster network too (the
/// rule is in the module doc): kubetron's earlier eth0 entry is dropped wherever it is, and the
/// new one, if the pod has IPs and no foreign eth0 or default entry exists, goes first.
pub fn merge_network_status_with(
    current: Option<&str>,
    ours: &[NetworkStatus],
    owned: &BTreeSet<String>,
    cluster: Option<ClusterNetwork<'_>>,
) -> Option<String> {
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
    let mut out: Vec<Value> = Vec::with_capacity(existing.len() + ours.len() + 1);
    let mut foreign_cluster_entry = false;
    for entry in existing {
        let iface = entry.get("interface").and_then(Value::as_str).map(str::to_string);
        let Some(iface) = iface.filter(|i| owned.contains(i) || ours_by_if.contains_key(i.as_str())) else {
            match cluster {
                // kubetron's eth0 entry: written again below (or not at all).
                Some(c) if c.is_ours(&entry) => {}
                _ => {
                    foreign_cluster_entry |= is_cluster_entry(&entry);
                    out.push(entry);
                }
            }
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
    // eth0 is never one of kubetron's own interfaces (requests may not name it); should one be,
    // it wins.
    let eth0_taken = foreign_cluster_entry || ours.iter().any(|s| s.interface.as_deref() == Some(CLUSTER_INTERFACE));
    if let Some(entry) = cluster.filter(|_| !eth0_taken).and_then(|c| c.entry()) {
        out.insert(0, serde_json::to_value(entry).unwrap_or(Value::Null));
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
            iface_id_ver: None,
            vm: None,
            sig: None,
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
        assert!(got[4].get("default").is_none(), "kubetron's own entries never carry default");
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

    fn cluster<'a>(ips: &'a [String]) -> Option<ClusterNetwork<'a>> {
        Some(ClusterNetwork { name: "cluster-net", ips })
    }

    fn ips(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn interfaces(v: &str) -> Vec<String> {
        entries(v).iter().map(|e| e["interface"].as_str().unwrap_or("-").to_string()).collect()
    }

    #[test]
    fn merge_writes_the_cluster_entry_first_once_the_pod_has_ips() {
        let pod_ips = ips(&["10.244.1.7", "fd00::7"]);
        let merged = merge_network_status_with(None, &[ours("net1", "10.1.0.5")], &owned(&[]), cluster(&pod_ips)).unwrap();
        let got = entries(&merged);
        assert_eq!(interfaces(&merged), ["eth0", "net1"], "{merged}");
        assert_eq!(
            got[0],
            serde_json::json!({"name": "cluster-net", "interface": "eth0", "ips": ["10.244.1.7", "fd00::7"], "default": true, "dns": {}}),
            "{merged}"
        );
        assert!(got[1].get("default").is_none(), "{merged}");
        let parsed = parse_network_status(&merged).unwrap();
        assert!(parsed[0].default && parsed[0].dns.as_ref().is_some_and(Dns::is_empty));

        // No IPs yet: no entry.
        let merged = merge_network_status_with(None, &[ours("net1", "10.1.0.5")], &owned(&[]), cluster(&[])).unwrap();
        assert_eq!(interfaces(&merged), ["net1"], "{merged}");
        // Off: no entry either.
        let merged = merge_network_status_with(None, &[ours("net1", "10.1.0.5")], &owned(&[]), None).unwrap();
        assert_eq!(interfaces(&merged), ["net1"], "{merged}");
    }

    #[test]
    fn merge_replaces_its_cluster_entry_and_moves_it_first() {
        let old_ips = ips(&["10.244.1.7"]);
        let new_ips = ips(&["10.244.9.9"]);
        let mine = merge_network_status_with(None, &[ours("net1", "10.1.0.5")], &owned(&[]), cluster(&old_ips)).unwrap();
        // Stable: merging the same again gives the same text (no write).
        let again = merge_network_status_with(Some(&mine), &[ours("net1", "10.1.0.5")], &owned(&["net1"]), cluster(&old_ips)).unwrap();
        assert_eq!(again, mine);
        // Another writer appended an entry, then the pod's IPs changed: kubetron's entry is replaced, not duplicated.
        let mut list = entries(&mine);
        list.push(serde_json::json!({"name": "ns/other", "interface": "net7"}));
        list.swap(0, 2);
        let current = serde_json::to_string(&list).unwrap();
        assert_eq!(interfaces(&current), ["net7", "net1", "eth0"]);
        let merged = merge_network_status_with(Some(&current), &[ours("net1", "10.1.0.5")], &owned(&["net1"]), cluster(&new_ips)).unwrap();
        assert_eq!(interfaces(&merged), ["eth0", "net7", "net1"], "{merged}");
        assert_eq!(entries(&merged)[0]["ips"], serde_json::json!(["10.244.9.9"]), "{merged}");
        // The pod lost its IPs, or kubetron lost interest (no networks): kubetron's entry goes.
        let merged = merge_network_status_with(Some(&mine), &[ours("net1", "10.1.0.5")], &owned(&["net1"]), cluster(&[])).unwrap();
        assert_eq!(interfaces(&merged), ["net1"], "{merged}");
        assert_eq!(merge_network_status_with(Some(&mine), &[], &owned(&["net1"]), cluster(&[])), None);
        // Off: an entry of kubetron's shape is left alone (it could be anyone's).
        let merged = merge_network_status_with(Some(&mine), &[ours("net1", "10.1.0.6")], &owned(&["net1"]), None).unwrap();
        assert_eq!(interfaces(&merged), ["eth0", "net1"], "{merged}");
        assert_eq!(entries(&merged)[0], entries(&mine)[0]);
        // Another name configured: that entry is not kubetron's any more but a foreign one.
        let other = Some(ClusterNetwork { name: "renamed", ips: &new_ips });
        let merged = merge_network_status_with(Some(&mine), &[ours("net1", "10.1.0.5")], &owned(&["net1"]), other).unwrap();
        assert_eq!(merged, mine, "kept as it is, no second eth0 entry");
    }

    #[test]
    fn merge_keeps_a_foreign_cluster_entry_and_adds_none() {
        let pod_ips = ips(&["10.244.0.5"]);
        // Multus's entry (a mac, an mtu): kept verbatim and in place, no second eth0 entry.
        let merged = merge_network_status_with(Some(MULTUS), &[ours("net1", "10.1.0.5")], &owned(&[]), cluster(&pod_ips)).unwrap();
        let got = entries(&merged);
        assert_eq!(&got[..4], &entries(MULTUS)[..], "{merged}");
        assert_eq!(got.len(), 5, "{merged}");
        assert_eq!(got.iter().filter(|e| e["interface"] == "eth0").count(), 1, "{merged}");
        // A foreign entry of kubetron's very shape but another name, one with eth0 but no default, one with
        // default but no interface: each counts as the cluster network's, and kubetron's own goes.
        let mine = merge_network_status_with(None, &[ours("net1", "10.1.0.5")], &owned(&[]), cluster(&pod_ips)).unwrap();
        for foreign in [
            serde_json::json!({"name": "kindnet", "interface": "eth0", "ips": ["10.244.0.5"], "default": true, "dns": {}}),
            serde_json::json!({"name": "cluster-net", "interface": "eth0", "ips": ["10.244.0.5"]}),
            serde_json::json!({"name": "cluster-net", "default": true}),
            serde_json::json!({"name": "cluster-net", "interface": "eth0", "ips": ["10.244.0.5"], "default": true, "mac": "0a:58:0a:f4:00:05"}),
        ] {
            let mut list = entries(&mine);
            list.push(foreign.clone());
            let current = serde_json::to_string(&list).unwrap();
            let merged =
                merge_network_status_with(Some(&current), &[ours("net1", "10.1.0.5")], &owned(&["net1"]), cluster(&pod_ips)).unwrap();
            let got = entries(&merged);
            assert_eq!(got.len(), 2, "{merged}");
            assert_eq!(got[1], foreign, "{merged}");
            assert_eq!(got[0]["interface"], "net1", "{merged}");
        }
    }

    #[test]
    fn bad_values_are_errors() {
        let e = parse_network_status("{\"interface\":1}").unwrap_err();
        assert!(e.to_string().contains(NETWORK_STATUS_ANNOTATION));
        assert!(parse_network_status("[{\"interface\":\"x\"}]").is_err(), "name is required");
    }
}

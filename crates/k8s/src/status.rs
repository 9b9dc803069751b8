//! Per-pod status annotations.
//!
//! - `k8s.v1.cni.cncf.io/network-status` (NPWG): a JSON list of [`NetworkStatus`].
//! - `kubetron.io/interfaces`: kubetron's own JSON list of [`KubetronInterface`], written by the
//!   controller when it has created the logical ports; the node side reads it to plug the pod.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// NPWG network status annotation.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// Kubetron's per-pod interface annotation.
pub const INTERFACES_ANNOTATION: &str = "kubetron.io/interfaces";

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
    /// True for the interface carrying the default route.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Device information (NPWG device-info spec), kept as JSON.
    #[serde(default, rename = "device-info", skip_serializing_if = "Option::is_none")]
    pub device_info: Option<serde_json::Value>,
}

/// DNS settings of a [`NetworkStatus`].
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

/// One entry of `kubetron.io/interfaces`: a pod interface and its OVN logical port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubetronInterface {
    /// Interface name in the pod.
    pub interface: String,
    /// The network, `namespace/name`.
    pub network: String,
    /// OVN logical switch name.
    pub logical_switch: String,
    /// OVN logical switch port name.
    pub logical_port: String,
    /// MAC address (`aa:bb:cc:dd:ee:ff`).
    pub mac: String,
    /// Addresses in CIDR form (`10.1.1.5/24`).
    #[serde(default)]
    pub ips: Vec<String>,
    /// Gateway, when the network has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

impl KubetronInterface {
    /// The matching NPWG `network-status` entry (addresses without prefix, as Multus writes
    /// them; not the default-route interface).
    pub fn to_network_status(&self) -> NetworkStatus {
        NetworkStatus {
            name: self.network.clone(),
            interface: Some(self.interface.clone()),
            ips: self.ips.iter().map(|ip| ip.split('/').next().unwrap_or(ip).to_string()).collect(),
            mac: Some(self.mac.clone()),
            ..Default::default()
        }
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

/// Parse a `kubetron.io/interfaces` annotation value.
pub fn parse_interfaces(value: &str) -> Result<Vec<KubetronInterface>, StatusParseError> {
    serde_json::from_str(value).map_err(|source| StatusParseError { annotation: INTERFACES_ANNOTATION, source })
}

/// Render a list as an annotation value (compact JSON).
pub fn to_annotation<T: Serialize>(items: &[T]) -> String {
    // Serializing these plain structs cannot fail; fall back to an empty list regardless.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
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
    fn interfaces_round_trip() {
        let i = KubetronInterface {
            interface: "net1".into(),
            network: "ns/blue".into(),
            logical_switch: "blue".into(),
            logical_port: "ns_pod_net1".into(),
            mac: "0a:00:00:00:00:01".into(),
            ips: vec!["10.1.1.5/24".into()],
            gateway: Some("10.1.1.1".into()),
        };
        let text = to_annotation(std::slice::from_ref(&i));
        assert!(text.contains("\"logical_switch\":\"blue\""));
        assert_eq!(parse_interfaces(&text).unwrap(), vec![i.clone()]);
        let st = i.to_network_status();
        assert_eq!(st.name, "ns/blue");
        assert_eq!(st.interface.as_deref(), Some("net1"));
        assert_eq!(st.ips, vec!["10.1.1.5"]);
        assert_eq!(st.mac.as_deref(), Some("0a:00:00:00:00:01"));
        assert!(!st.default);
    }

    #[test]
    fn bad_values_are_errors() {
        let e = parse_interfaces("{\"interface\":1}").unwrap_err();
        assert!(e.to_string().contains(INTERFACES_ANNOTATION));
        assert!(parse_network_status("[{\"interface\":\"x\"}]").is_err(), "name is required");
    }
}

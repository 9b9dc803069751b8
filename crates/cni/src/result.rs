//! The ADD result (spec 1.1.0 shape) and its conversion to older shapes (0.3.x/0.4.0: `ips[].version`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::CniError;
use model::netconf::Version;
use model::status::Dns;

/// An interface created by the plugin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address, `aa:bb:cc:dd:ee:ff` (when L2 addresses are meaningful).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Netns path for container interfaces; empty for host interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    /// vhost-user / socket path (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// PCI id of a device (1.1.0).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An IP address assigned to an interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with prefix, e.g. `10.1.0.5/24`.
    pub address: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result (or IPAM result).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; absent means the default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Priority/metric (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

/// The result of ADD (also `prevResult`). Parsing accepts every supported version's shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    /// The version of this result; the dispatcher sets it to the config's.
    #[serde(default)]
    pub cni_version: String,
    /// Interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteEntry>,
    /// DNS.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl CniResult {
    /// Parses a result (e.g. `prevResult`) of any supported version; `ips[].version` is checked
    /// against the address family when present.
    pub fn from_value(v: &Value) -> Result<CniResult, CniError> {
        let r: CniResult = serde_json::from_value(v.clone()).map_err(|e| CniError::decode(format!("cannot decode CNI result: {e}")))?;
        if let Some(ips) = v.get("ips").and_then(Value::as_array) {
            for (ip, parsed) in ips.iter().zip(&r.ips) {
                if let Some(ver) = ip.get("version").and_then(Value::as_str) {
                    let want = if parsed.address.addr().is_ipv4() { "4" } else { "6" };
                    if ver != want {
                        return Err(CniError::decode(format!("ips entry {} has version {ver:?}", parsed.address)));
                    }
                }
            }
        }
        r.validate()?;
        Ok(r)
    }

    /// Checks internal consistency: interface indexes in range, gateways of the address's family.
    pub fn validate(&self) -> Result<(), CniError> {
        for ip in &self.ips {
            if let Some(i) = ip.interface {
                if i >= self.interfaces.len() {
                    return Err(CniError::decode(format!(
                        "ips entry {} names interface {i}, but there are {}",
                        ip.address,
                        self.interfaces.len()
                    )));
                }
            }
            if let Some(gw) = ip.gateway {
                if gw.is_ipv4() != ip.address.addr().is_ipv4() {
                    return Err(CniError::decode(format!("ips entry {} has gateway {gw} of another family", ip.address)));
                }
            }
        }
        for r in &self.routes {
            if let Some(gw) = r.gw {
                if gw.is_ipv4() != r.dst.addr().is_ipv4() {
                    return Err(CniError::decode(format!("route {} has gateway {gw} of another family", r.dst)));
                }
            }
        }
        Ok(())
    }

    /// The JSON for `version`: 1.1.0 as is; 1.0.0 without 1.1 fields; 0.3.x/0.4.0 also with
    /// `ips[].version` ("4"/"6"). `cniVersion` is set to `version`.
    pub fn to_version(&self, version: &str) -> Result<Value, CniError> {
        let v = Version::supported(version)?;
        self.validate().map_err(|e| CniError::internal(format!("plugin produced an invalid result: {}", e.msg)))?;
        let mut out = serde_json::to_value(self).map_err(|e| CniError::internal(format!("cannot encode result: {e}")))?;
        let obj = out.as_object_mut().ok_or_else(|| CniError::internal("result is not an object"))?;
        obj.insert("cniVersion".into(), Value::String(version.to_string()));
        if v < Version::V1_1_0 {
            strip(obj, "interfaces", &["mtu", "socketPath", "pciID"]);
            strip(obj, "routes", &["mtu", "advmss", "priority", "table", "scope"]);
        }
        if v < Version::V1_0_0 {
            if let Some(Value::Array(ips)) = obj.get_mut("ips") {
                for (ip, typed) in ips.iter_mut().zip(&self.ips) {
                    if let Value::Object(m) = ip {
                        let fam = if typed.address.addr().is_ipv4() { "4" } else { "6" };
                        // The older shape lists `version` first.
                        let mut n = Map::new();
                        n.insert("version".into(), Value::String(fam.into()));
                        n.extend(std::mem::take(m));
                        *m = n;
                    }
                }
            }
        }
        Ok(out)
    }
}

fn strip(obj: &mut Map<String, Value>, list: &str, keys: &[&str]) {
    if let Some(Value::Array(items)) = obj.get_mut(list) {
        for it in items {
            if let Value::Object(m) = it {
                for k in keys {
                    m.remove(*k);
                }
            }
        }
    }
}

//! Network configuration (spec 1.1.0 plugin config, as the runtime passes it on stdin) and
//! kubetron's own fields.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::CniError;
use crate::result::{CniResult, Dns};
use crate::version::Version;

/// Default OVSDB (Open_vSwitch) socket.
pub const DEFAULT_OVS_SOCKET: &str = "unix:/var/run/openvswitch/db.sock";
/// Default integration bridge.
pub const DEFAULT_BRIDGE: &str = "br-int";
/// Default pod MTU (fits the 1442 limit of geneve + OVN on a 1500 underlay).
pub const DEFAULT_MTU: u32 = 1400;
/// Default time to wait for the logical switch port to come up.
pub const DEFAULT_PORT_UP_TIMEOUT_MS: u64 = 10_000;

/// An IPAM section: `type` plus plugin-specific fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Ipam {
    /// IPAM plugin to run.
    #[serde(rename = "type", default)]
    pub ipam_type: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `runtimeConfig.portMappings` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// "tcp" (default), "udp", "sctp".
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Host IP to bind.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

fn default_protocol() -> String {
    "tcp".into()
}

/// `runtimeConfig` (capability arguments, see the CNI conventions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Requested IPs, CIDR (`10.1.0.5/24`) or plain addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Requested MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Port mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// Bandwidth limits (kept as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Value>,
    /// DNS requested by the runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Other capabilities (`deviceID`, `cgroupPath`, `aliases`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `cni.dev/valid-attachments` entry (GC).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name in the container.
    pub ifname: String,
}

/// kubetron's own config fields (next to the spec's, at the top level of the config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KubetronConf {
    /// OVN logical switch to plug into; default: the network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_switch: Option<String>,
    /// Local OVSDB remote.
    #[serde(default = "default_ovs_socket")]
    pub ovs_socket: String,
    /// OVN NB remote(s), comma-separated; none = do not touch NB from the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb: Option<String>,
    /// Integration bridge.
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// Pod interface MTU.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Address the pod by OVN native DHCP instead of static IPs.
    #[serde(default)]
    pub dhcp: bool,
    /// How long ADD waits for the logical switch port to be up (0: do not wait).
    #[serde(default = "default_port_up_timeout")]
    pub port_up_timeout_ms: u64,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_ovs_socket() -> String {
    DEFAULT_OVS_SOCKET.into()
}
fn default_bridge() -> String {
    DEFAULT_BRIDGE.into()
}
fn default_mtu() -> u32 {
    DEFAULT_MTU
}
fn default_port_up_timeout() -> u64 {
    DEFAULT_PORT_UP_TIMEOUT_MS
}

impl Default for KubetronConf {
    fn default() -> Self {
        KubetronConf {
            logical_switch: None,
            ovs_socket: default_ovs_socket(),
            nb: None,
            bridge: default_bridge(),
            mtu: DEFAULT_MTU,
            dhcp: false,
            port_up_timeout_ms: DEFAULT_PORT_UP_TIMEOUT_MS,
            extra: Map::new(),
        }
    }
}

/// The network configuration a plugin receives on stdin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// Spec version of this config (and of the result to print).
    pub cni_version: String,
    /// Network name (unique on the host).
    pub name: String,
    /// Plugin type (executable name).
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// `args` (conventions: `args.cni.ips`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Map<String, Value>>,
    /// Set up IP masquerade on the host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ip_masq: bool,
    /// IPAM section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// DNS section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Capability arguments from the runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    /// The previous plugin's (or ADD's) result, raw; typed in [`crate::Request::prev_result`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    /// GC: attachments that must be kept.
    #[serde(rename = "cni.dev/valid-attachments", default, skip_serializing_if = "Option::is_none")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// kubetron's fields.
    #[serde(flatten)]
    pub kubetron: KubetronConf,
}

impl NetConf {
    /// Parses a config from JSON bytes: not JSON -> code 6; wrong shape -> code 7;
    /// unsupported `cniVersion` -> code 1; bad values -> code 7 (see [`NetConf::validate`]).
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| CniError::decode(format!("network config is not JSON: {e}")))?;
        NetConf::from_value(v)
    }

    /// As [`NetConf::parse`], from a JSON value.
    pub fn from_value(v: Value) -> Result<NetConf, CniError> {
        let obj = v.as_object().ok_or_else(|| CniError::decode("network config is not a JSON object"))?;
        // Version first: an unsupported version is code 1 whatever else is wrong.
        match obj.get("cniVersion") {
            Some(Value::String(s)) => {
                Version::supported(s)?;
            }
            Some(other) => return Err(CniError::decode(format!("cniVersion must be a string, got {other}"))),
            None => return Err(CniError::invalid_config("network config has no cniVersion")),
        }
        let conf: NetConf = serde_json::from_value(v).map_err(|e| CniError::invalid_config(format!("invalid network config: {e}")))?;
        conf.validate()?;
        Ok(conf)
    }

    /// The spec version, parsed.
    pub fn version(&self) -> Result<Version, CniError> {
        Version::supported(&self.cni_version)
    }

    /// The OVN logical switch: `logical_switch`, or the network name.
    pub fn logical_switch(&self) -> &str {
        self.kubetron.logical_switch.as_deref().unwrap_or(&self.name)
    }

    /// The typed `prevResult`, if any.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        self.prev_result.as_ref().map(CniResult::from_value).transpose()
    }

    /// IPs requested by `runtimeConfig.ips` and `args.cni.ips` (plain addresses get a host prefix).
    pub fn requested_ips(&self) -> Result<Vec<IpNet>, CniError> {
        let mut out = Vec::new();
        let mut raw: Vec<String> = self.runtime_config.as_ref().map(|r| r.ips.clone()).unwrap_or_default();
        if let Some(ips) = self.args.as_ref().and_then(|a| a.get("cni")).and_then(|c| c.get("ips")).and_then(Value::as_array) {
            raw.extend(ips.iter().filter_map(Value::as_str).map(str::to_string));
        }
        for s in raw {
            let net = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| CniError::invalid_config(format!("requested IP {s:?} is not an address or CIDR")))?;
            if !out.contains(&net) {
                out.push(net);
            }
        }
        Ok(out)
    }

    /// Checks the values (code 7 on failure, code 1 for the version).
    pub fn validate(&self) -> Result<(), CniError> {
        self.version()?;
        if !valid_network_name(&self.name) {
            return Err(CniError::invalid_config(format!(
                "network name {:?} is invalid: must start with a letter or digit, then letters, digits, '_', '.', '-'",
                self.name
            )));
        }
        if self.plugin_type.is_empty() {
            return Err(CniError::invalid_config("network config has an empty \"type\""));
        }
        let k = &self.kubetron;
        if let Some(ls) = &k.logical_switch {
            if ls.is_empty() {
                return Err(CniError::invalid_config("logical_switch is empty"));
            }
        }
        check_remote("ovs_socket", &k.ovs_socket)?;
        if let Some(nb) = &k.nb {
            for r in nb.split(',') {
                check_remote("nb", r.trim())?;
            }
        }
        if k.bridge.is_empty() || k.bridge.len() > 15 || k.bridge.contains(['/', ':', ' ']) {
            return Err(CniError::invalid_config(format!("bridge {:?} is not a valid interface name", k.bridge)));
        }
        if !(68..=65535).contains(&k.mtu) {
            return Err(CniError::invalid_config(format!("mtu {} is out of range 68..=65535", k.mtu)));
        }
        if k.port_up_timeout_ms > 600_000 {
            return Err(CniError::invalid_config(format!(
                "port_up_timeout_ms {} is out of range 0..=600000 (0: do not wait)",
                k.port_up_timeout_ms
            )));
        }
        if let Some(mac) = self.runtime_config.as_ref().and_then(|r| r.mac.as_deref()) {
            if !valid_mac(mac) {
                return Err(CniError::invalid_config(format!("runtimeConfig.mac {mac:?} is not a MAC address")));
            }
        }
        self.requested_ips()?;
        Ok(())
    }
}

/// Network names: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (as libcni checks).
pub fn valid_network_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric()) && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// OVSDB remotes: `unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`.
fn check_remote(field: &str, r: &str) -> Result<(), CniError> {
    let ok = match r.split_once(':') {
        Some(("unix", path)) => !path.is_empty(),
        Some(("tcp" | "ssl", hp)) => hp.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(CniError::invalid_config(format!("{field} {r:?} is not an OVSDB remote (unix:PATH, tcp:HOST:PORT, ssl:HOST:PORT)")))
    }
}

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
/// Default overall deadline of one plugin call: well under the kubelet's CRI runtime request
/// timeout (2 minutes), so the runtime gets our "try again later" instead of its own timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The longest `port_up_timeout_ms` a `timeout_ms` allows: it must leave twice the cleanup
/// reserve for connecting, plugging and undoing.
pub fn max_port_up_timeout_ms(timeout_ms: u64) -> u64 {
    timeout_ms.saturating_sub(2 * cleanup_reserve_ms(timeout_ms))
}
/// The capability under which containerd and CRI-O pass a pod's annotations in `runtimeConfig`.
pub const POD_ANNOTATIONS_CAPABILITY: &str = "io.kubernetes.cri.pod-annotations";
/// Smallest accepted `timeout_ms`.
pub const MIN_TIMEOUT_MS: u64 = 1_000;
/// Largest accepted `timeout_ms` (10 s under the kubelet's 2 minutes).
pub const MAX_TIMEOUT_MS: u64 = 110_000;

/// The part of `timeout_ms` kept for undoing a failed ADD (and, twice over, the margin that
/// `port_up_timeout_ms` must leave for connecting and plugging): a quarter of it, at most 5 s.
pub fn cleanup_reserve_ms(timeout_ms: u64) -> u64 {
    (timeout_ms / 4).min(5_000)
}

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

/// Which path serves a network (config key `mode`; see [`KubetronConf::mode`] for the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The CNI binary is a shim forwarding every request to the node agent (`kubetron node`) over
    /// the unix socket `agent_socket`; no node touches the OVN Northbound database.
    Cluster,
    /// As `cluster`, with kubetron chained after the cluster's default plugin in a conflist.
    Chained,
    /// The direct path: the plugin itself talks to the Northbound database named by `nb` and to the
    /// local OVS (no Kubernetes needed: the sandbox, other orchestrators).
    Standalone,
}

impl Mode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cluster => "cluster",
            Mode::Chained => "chained",
            Mode::Standalone => "standalone",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The node agent's socket when the config has no `agent_socket`.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/kubetron/cni/kubetron.sock";

/// kubetron's own config fields (next to the spec's, at the top level of the config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KubetronConf {
    /// `cluster`, `chained` or `standalone`; absent: inferred, see [`KubetronConf::mode`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Cluster and chained modes: the node agent's unix socket (default [`DEFAULT_AGENT_SOCKET`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_socket: Option<String>,
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
    /// Overall deadline of every verb (ADD, DEL, CHECK, STATUS, GC), in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// For `ssl:` Northbound remotes: the client private key (PEM file), as `ovn-nbctl -p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb_private_key: Option<String>,
    /// For `ssl:` Northbound remotes: the client certificate (PEM file), as `ovn-nbctl -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb_certificate: Option<String>,
    /// For `ssl:` Northbound remotes: the CA certificate the server's certificate must chain to
    /// (PEM file), as `ovn-nbctl -C`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb_ca_cert: Option<String>,
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
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl KubetronConf {
    /// The mode: `mode` when set; otherwise `standalone` when `nb` is set (what every config meant
    /// before modes existed), else `cluster`.
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or(if self.nb.is_some() { Mode::Standalone } else { Mode::Cluster })
    }

    /// The node agent's socket: `agent_socket`, or [`DEFAULT_AGENT_SOCKET`].
    pub fn agent_socket(&self) -> &str {
        self.agent_socket.as_deref().unwrap_or(DEFAULT_AGENT_SOCKET)
    }

    /// Whether any Northbound remote is `ssl:`.
    pub fn nb_uses_ssl(&self) -> bool {
        self.nb.as_deref().is_some_and(|nb| nb.split(',').any(|r| r.trim().starts_with("ssl:")))
    }

    /// The PEM files for `ssl:` Northbound remotes (private key, certificate, CA certificate),
    /// when all three are set.
    pub fn nb_tls(&self) -> Option<(&str, &str, &str)> {
        match (&self.nb_private_key, &self.nb_certificate, &self.nb_ca_cert) {
            (Some(k), Some(c), Some(ca)) => Some((k, c, ca)),
            _ => None,
        }
    }
}

impl Default for KubetronConf {
    fn default() -> Self {
        KubetronConf {
            mode: None,
            agent_socket: None,
            logical_switch: None,
            ovs_socket: default_ovs_socket(),
            nb: None,
            bridge: default_bridge(),
            mtu: DEFAULT_MTU,
            dhcp: false,
            port_up_timeout_ms: DEFAULT_PORT_UP_TIMEOUT_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            nb_private_key: None,
            nb_certificate: None,
            nb_ca_cert: None,
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
        let explicit_port_up = obj.contains_key("port_up_timeout_ms");
        let mut conf: NetConf = serde_json::from_value(v).map_err(|e| CniError::invalid_config(format!("invalid network config: {e}")))?;
        // The port-up wait shrinks to fit timeout_ms. An explicit value that does not fit is clamped
        // with a warning, never refused: DEL and GC run with the config saved at ADD time (Multus,
        // CRI-O), so refusing a config that worked before would keep pods terminating forever.
        let k = &mut conf.kubetron;
        let max_port_up = max_port_up_timeout_ms(k.timeout_ms);
        if k.port_up_timeout_ms > max_port_up && k.port_up_timeout_ms <= 600_000 {
            if explicit_port_up {
                tracing::warn!(
                    "port_up_timeout_ms {} leaves too little of timeout_ms {} for connecting, plugging and cleaning up; using {max_port_up}",
                    k.port_up_timeout_ms,
                    k.timeout_ms
                );
            }
            k.port_up_timeout_ms = max_port_up;
        }
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

    /// Refuses (code 7) capability arguments kubetron cannot honour: non-empty
    /// `runtimeConfig.portMappings` or `runtimeConfig.bandwidth` (a runtime passes them only
    /// when the config declares the capability). Ignoring them would leave the pod without what
    /// it asked for; the NPWG spec says the attachment must fail instead. Checked by ADD only
    /// (DEL, CHECK and GC must still work on such a config).
    pub fn refuse_unhonoured_capabilities(&self) -> Result<(), CniError> {
        let Some(rc) = &self.runtime_config else { return Ok(()) };
        let mut asked = Vec::new();
        if !rc.port_mappings.is_empty() {
            asked.push("portMappings");
        }
        if rc.bandwidth.as_ref().is_some_and(|b| !b.is_null() && b.as_object().is_none_or(|o| !o.is_empty())) {
            asked.push("bandwidth");
        }
        if asked.is_empty() {
            return Ok(());
        }
        Err(CniError::invalid_config(format!(
            "kubetron cannot honour runtimeConfig.{}: chain the plugin that implements it (portmap, bandwidth) after kubetron and declare the capability there, not on kubetron",
            asked.join(" and runtimeConfig.")
        )))
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
        if k.ovs_socket.starts_with("ssl:") {
            return Err(CniError::invalid_config(format!(
                "ovs_socket {:?}: ssl: is not supported for the local Open_vSwitch database (use unix: or tcp:)",
                k.ovs_socket
            )));
        }
        if let Some(nb) = &k.nb {
            for r in nb.split(',') {
                check_remote("nb", r.trim())?;
            }
        }
        let tls_keys = [("nb_private_key", &k.nb_private_key), ("nb_certificate", &k.nb_certificate), ("nb_ca_cert", &k.nb_ca_cert)];
        for (key, v) in &tls_keys {
            if v.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(CniError::invalid_config(format!("{key} is empty (a PEM file path)")));
            }
        }
        let missing: Vec<&str> = tls_keys.iter().filter(|(_, v)| v.is_none()).map(|(key, _)| *key).collect();
        if k.nb_uses_ssl() && !missing.is_empty() {
            return Err(CniError::invalid_config(format!(
                "nb {:?} has an ssl: remote but the config lacks {} (PEM files: client private key, client certificate, CA certificate, as ovn-nbctl -p/-c/-C)",
                k.nb.as_deref().unwrap_or(""),
                missing.join(", ")
            )));
        }
        if missing.len() == 1 || missing.len() == 2 {
            return Err(CniError::invalid_config(format!(
                "nb_private_key, nb_certificate and nb_ca_cert go together: {} missing",
                missing.join(", ")
            )));
        }
        if let Some(sock) = &k.agent_socket {
            if !sock.starts_with('/') || sock.contains('\0') {
                return Err(CniError::invalid_config(format!("agent_socket {sock:?} is not an absolute path")));
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
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&k.timeout_ms) {
            return Err(CniError::invalid_config(format!(
                "timeout_ms {} is out of range {MIN_TIMEOUT_MS}..={MAX_TIMEOUT_MS} (it must stay under the kubelet's 2-minute runtime request timeout)",
                k.timeout_ms
            )));
        }
        if let Some(mac) = self.runtime_config.as_ref().and_then(|r| r.mac.as_deref()) {
            if model::mac::normalize(mac).is_none() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    fn parse(v: Value) -> Result<NetConf, CniError> {
        NetConf::from_value(v)
    }
    fn base() -> Value {
        json!({"cniVersion": "1.1.0", "name": "red", "type": "kubetron", "nb": "unix:/run/ovn/ovnnb_db.sock"})
    }
    fn with(pairs: &[(&str, Value)]) -> Value {
        let mut v = base();
        for (k, x) in pairs {
            v[*k] = x.clone();
        }
        v
    }

    #[test]
    fn timeout_defaults_and_bounds() {
        let c = parse(base()).unwrap();
        assert_eq!(c.kubetron.timeout_ms, DEFAULT_TIMEOUT_MS);
        const { assert!(DEFAULT_TIMEOUT_MS < 120_000 && MAX_TIMEOUT_MS < 120_000, "must stay under the kubelet's 2 minutes") };
        assert!(c.kubetron.port_up_timeout_ms + 2 * cleanup_reserve_ms(DEFAULT_TIMEOUT_MS) <= DEFAULT_TIMEOUT_MS);
        for bad in [0, 999, 110_001, 600_000] {
            let e = parse(with(&[("timeout_ms", json!(bad))])).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{bad}: {e}");
            assert!(e.msg.contains("timeout_ms"), "{}", e.msg);
        }
        // port_up_timeout_ms must leave room for the rest of ADD and its cleanup: clamped, not
        // refused (a DEL with the config saved at ADD time must still work).
        let c = parse(with(&[("timeout_ms", json!(30_000)), ("port_up_timeout_ms", json!(25_000))])).unwrap();
        assert_eq!(c.kubetron.port_up_timeout_ms, 20_000);
        parse(with(&[("timeout_ms", json!(30_000)), ("port_up_timeout_ms", json!(20_000))])).unwrap();
        parse(with(&[("timeout_ms", json!(60_000)), ("port_up_timeout_ms", json!(50_000))])).unwrap();
        parse(with(&[("timeout_ms", json!(1000)), ("port_up_timeout_ms", json!(500))])).unwrap();
        // Without an explicit port_up_timeout_ms, the default shrinks to fit.
        assert_eq!(parse(with(&[("timeout_ms", json!(1000))])).unwrap().kubetron.port_up_timeout_ms, 500);
        assert_eq!(parse(with(&[("timeout_ms", json!(5000))])).unwrap().kubetron.port_up_timeout_ms, 2500);
        assert_eq!(parse(with(&[("timeout_ms", json!(100_000))])).unwrap().kubetron.port_up_timeout_ms, DEFAULT_PORT_UP_TIMEOUT_MS);
        let c = parse(with(&[("timeout_ms", json!(1000)), ("port_up_timeout_ms", json!(10_000))])).unwrap();
        assert_eq!(c.kubetron.port_up_timeout_ms, 500);
        // Out of its own range is still an error.
        let e = parse(with(&[("port_up_timeout_ms", json!(600_001))])).unwrap_err();
        assert!(e.msg.contains("port_up_timeout_ms 600001"), "{}", e.msg);
    }

    #[test]
    fn mode_is_inferred_from_nb() {
        // Every config so far has `nb` and no `mode`: it stays on the direct path.
        let c = parse(base()).unwrap();
        assert_eq!((c.kubetron.mode, c.kubetron.mode()), (None, Mode::Standalone));
        let mut no_nb = base();
        no_nb.as_object_mut().unwrap().remove("nb");
        let c = parse(no_nb.clone()).unwrap();
        assert_eq!(c.kubetron.mode(), Mode::Cluster);
        assert_eq!(c.kubetron.agent_socket(), DEFAULT_AGENT_SOCKET);
        for (m, want) in [("cluster", Mode::Cluster), ("chained", Mode::Chained), ("standalone", Mode::Standalone)] {
            let c = parse(with(&[("mode", json!(m))])).unwrap();
            assert_eq!(c.kubetron.mode(), want, "explicit mode wins over nb");
            assert_eq!(want.to_string(), m);
            assert_eq!(serde_json::to_value(&c).unwrap()["mode"], json!(m), "kept when serialized");
        }
        let c = parse(with(&[("agent_socket", json!("/tmp/a.sock"))])).unwrap();
        assert_eq!(c.kubetron.agent_socket(), "/tmp/a.sock");
        for bad in [("mode", json!("Cluster")), ("mode", json!(1)), ("agent_socket", json!("a.sock")), ("agent_socket", json!(""))] {
            let e = parse(with(std::slice::from_ref(&bad))).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{bad:?}: {e}");
        }
    }

    #[test]
    fn ssl_needs_the_three_files() {
        let ssl = json!("ssl:10.0.0.1:6641");
        let e = parse(with(&[("nb", ssl.clone())])).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "not 'try again later': {e}");
        for k in ["nb_private_key", "nb_certificate", "nb_ca_cert"] {
            assert!(e.msg.contains(k), "{}", e.msg);
        }
        let e = parse(with(&[("nb", json!("tcp:10.0.0.2:6641,ssl:10.0.0.1:6641")), ("nb_ca_cert", json!("/ca.pem"))])).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("nb_private_key, nb_certificate") && !e.msg.contains("nb_ca_cert,"), "{}", e.msg);
        let full =
            [("nb", ssl), ("nb_private_key", json!("/k.pem")), ("nb_certificate", json!("/c.pem")), ("nb_ca_cert", json!("/ca.pem"))];
        let c = parse(with(&full)).unwrap();
        assert!(c.kubetron.nb_uses_ssl());
        assert_eq!(c.kubetron.nb_tls(), Some(("/k.pem", "/c.pem", "/ca.pem")));
        // Files without an ssl: remote are accepted (e.g. one NAD config for a mixed cluster)...
        let c = parse(with(&full[1..])).unwrap();
        assert!(!c.kubetron.nb_uses_ssl());
        // ... but not an incomplete set, nor empty paths.
        let e = parse(with(&full[1..3])).unwrap_err();
        assert!(e.msg.contains("nb_ca_cert"), "{}", e.msg);
        let e = parse(with(&[("nb_private_key", json!(" ")), ("nb_certificate", json!("/c")), ("nb_ca_cert", json!("/ca"))])).unwrap_err();
        assert!(e.msg.contains("nb_private_key is empty"), "{}", e.msg);
        let e = parse(with(&[("ovs_socket", json!("ssl:127.0.0.1:6640"))])).unwrap_err();
        assert!(e.msg.contains("ovs_socket"), "{}", e.msg);
    }
}

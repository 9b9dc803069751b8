//! The network config of a kubetron network, read the same way by the CNI plugin (standalone and
//! shim), the node agent, the controller, the webhook and the NAD sync.
//!
//! - [`KubetronNetConf`]: the fields of kubetron's plugin object (everything but `type` and what the
//!   runtime puts around it: `cniVersion`, `name`, `args`, `runtimeConfig`, `prevResult`): which
//!   fields exist, their defaults, and [`KubetronNetConf::validate`], the combinations refused with
//!   which [`NetConfError`]. The CNI plugin's `cni::NetConf` flattens it next to the runtime's
//!   fields; [`NadConfig`] reads it from a NAD's `spec.config`.
//! - [`NadConfig`]: a NAD's `spec.config` (one plugin or a conflist with kubetron's plugin in it),
//!   with the network name, `cniVersion` and the capabilities of the plugins chained with kubetron.
//! - [`Version`]: the CNI spec versions kubetron accepts in `cniVersion`.

mod nad;
mod version;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

pub use nad::{NadConfig, NadConfigError};
pub use version::{Version, VersionError, CURRENT_VERSION, SUPPORTED_VERSIONS};

use crate::status::Dns;

/// The CNI `type` of kubetron's plugin (and the binary's name in the CNI bin dir).
pub const PLUGIN_TYPE: &str = "kubetron";
/// Default OVSDB (Open_vSwitch) socket.
pub const DEFAULT_OVS_SOCKET: &str = "unix:/var/run/openvswitch/db.sock";
/// Default integration bridge.
pub const DEFAULT_BRIDGE: &str = "br-int";
/// Default pod MTU (fits the 1442 limit of geneve + OVN on a 1500 underlay).
pub const DEFAULT_MTU: u32 = 1400;
/// Default time to wait for the logical switch port to come up.
pub const DEFAULT_PORT_UP_TIMEOUT_MS: u64 = 10_000;
/// Largest accepted `port_up_timeout_ms` (0: do not wait).
pub const MAX_PORT_UP_TIMEOUT_MS: u64 = 600_000;
/// Default overall deadline of one plugin call: well under the kubelet's CRI runtime request
/// timeout (2 minutes), so the runtime gets our "try again later" instead of its own timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Smallest accepted `timeout_ms`.
pub const MIN_TIMEOUT_MS: u64 = 1_000;
/// Largest accepted `timeout_ms` (10 s under the kubelet's 2 minutes).
pub const MAX_TIMEOUT_MS: u64 = 110_000;
/// The node agent's socket when the config has no `agent_socket`.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/kubetron/cni/kubetron.sock";

/// The part of `timeout_ms` kept for undoing a failed ADD (and, twice over, the margin that
/// `port_up_timeout_ms` must leave for connecting and plugging): a quarter of it, at most 5 s.
pub fn cleanup_reserve_ms(timeout_ms: u64) -> u64 {
    (timeout_ms / 4).min(5_000)
}

/// The longest `port_up_timeout_ms` a `timeout_ms` allows: it must leave twice the cleanup
/// reserve for connecting, plugging and undoing.
pub fn max_port_up_timeout_ms(timeout_ms: u64) -> u64 {
    timeout_ms.saturating_sub(2 * cleanup_reserve_ms(timeout_ms))
}

/// Network names: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (as libcni checks).
pub fn valid_network_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphanumeric()) && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A requested IP (`runtimeConfig.ips`, `args.cni.ips`): a CIDR, or a plain address (which gets a
/// host prefix).
pub fn parse_requested_ip(s: &str) -> Result<IpNet, NetConfError> {
    s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| NetConfError::RequestedIp(s.to_string()))
}

/// The strings of a config's `args.cni.ips` (CNI conventions: IPs the config asks for).
pub fn args_ips(args: &Map<String, Value>) -> impl Iterator<Item = &str> {
    args.get("cni").and_then(|c| c.get("ips")).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

/// Is this plugin object (of a config or a conflist's `plugins`) kubetron's: `"type": "kubetron"`?
pub fn is_kubetron(plugin: &Value) -> bool {
    plugin.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE)
}

/// [`valid_network_name`] as a rule.
pub fn check_network_name(s: &str) -> Result<(), NetConfError> {
    if valid_network_name(s) {
        Ok(())
    } else {
        Err(NetConfError::NetworkName(s.to_string()))
    }
}

/// Which path serves a network (config key `mode`; see [`KubetronNetConf::mode`] for the default).
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

/// What kubetron's `capabilities` grant pods: static IPs (`ips`) and a static MAC (`mac`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Pods may ask for static IPs.
    pub ips: bool,
    /// Pods may ask for a static MAC.
    pub mac: bool,
}

impl Capabilities {
    /// The config's `capabilities` object: `{"ips": .., "mac": ..}`.
    pub fn to_map(self) -> Map<String, Value> {
        Map::from_iter([("ips".to_string(), Value::Bool(self.ips)), ("mac".to_string(), Value::Bool(self.mac))])
    }
}

/// An IPAM section: `type` plus plugin-specific fields (kubetron does not run IPAM plugins).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Ipam {
    /// IPAM plugin to run.
    #[serde(rename = "type", default)]
    pub ipam_type: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The fields of kubetron's plugin object (see the module doc). Serialized, it holds what differs
/// from the defaults, so a config written from it (the NAD sync's, the chained entry) names only
/// what it sets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KubetronNetConf {
    /// `cluster`, `chained` or `standalone`; absent: inferred, see [`KubetronNetConf::mode`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Cluster and chained modes: the node agent's unix socket (default [`DEFAULT_AGENT_SOCKET`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_socket: Option<String>,
    /// OVN logical switch to plug into; default: the network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_switch: Option<String>,
    /// The Neutron network (its UUID) under the controller's `neutron` backend: its ports are
    /// Neutron's, made through Neutron's API; the logical switch is Neutron's `neutron-<UUID>`.
    /// Meaningless for the `ovn` backend and refused with `nb` (standalone mode writes the
    /// Northbound database itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// CNI `capabilities`: kubetron's own are `ips` and `mac` ([`KubetronNetConf::granted`]);
    /// others (`io.kubernetes.cri.pod-annotations`) are for the runtime, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Map<String, Value>>,
    /// The logical switch's `other_config:subnet`, as the NAD sync copies it: lets the webhook
    /// refuse static IPs the network can never give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// The logical switch's `other_config:exclude_ips`, as the NAD sync copies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_ips: Option<String>,
    /// Local OVSDB remote.
    #[serde(default = "default_ovs_socket", skip_serializing_if = "is_default_ovs_socket")]
    pub ovs_socket: String,
    /// OVN NB remote(s), comma-separated; none = do not touch NB from the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb: Option<String>,
    /// Integration bridge.
    #[serde(default = "default_bridge", skip_serializing_if = "is_default_bridge")]
    pub bridge: String,
    /// Pod interface MTU.
    #[serde(default = "default_mtu", skip_serializing_if = "is_default_mtu")]
    pub mtu: u32,
    /// Address the pod by OVN native DHCP instead of static IPs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dhcp: bool,
    /// `"allowPersistentIPs": true` (the key KubeVirt's ipam-extensions reads from a NAD config):
    /// pods may name an IPAMClaim (`ipam-claim-reference`, NPWG v1.3) whose addresses the
    /// controller keeps in a port of the claim's own, across pods, until the claim is deleted.
    #[serde(rename = "allowPersistentIPs", default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_persistent_ips: bool,
    /// How long ADD waits for the logical switch port to be up (0: do not wait).
    #[serde(default = "default_port_up_timeout", skip_serializing_if = "is_default_port_up_timeout")]
    pub port_up_timeout_ms: u64,
    /// Overall deadline of every verb (ADD, DEL, CHECK, STATUS, GC), in milliseconds.
    #[serde(default = "default_timeout", skip_serializing_if = "is_default_timeout")]
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
    /// The spec's `ipMasq` (kubetron does not masquerade).
    #[serde(rename = "ipMasq", default, skip_serializing_if = "std::ops::Not::not")]
    pub ip_masq: bool,
    /// The spec's IPAM section (kubetron does not run IPAM plugins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// The spec's DNS section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_ovs_socket() -> String {
    DEFAULT_OVS_SOCKET.into()
}
fn is_default_ovs_socket(s: &String) -> bool {
    s == DEFAULT_OVS_SOCKET
}
fn default_bridge() -> String {
    DEFAULT_BRIDGE.into()
}
fn is_default_bridge(s: &String) -> bool {
    s == DEFAULT_BRIDGE
}
fn default_mtu() -> u32 {
    DEFAULT_MTU
}
fn is_default_mtu(m: &u32) -> bool {
    *m == DEFAULT_MTU
}
fn default_port_up_timeout() -> u64 {
    DEFAULT_PORT_UP_TIMEOUT_MS
}
fn is_default_port_up_timeout(t: &u64) -> bool {
    *t == DEFAULT_PORT_UP_TIMEOUT_MS
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn is_default_timeout(t: &u64) -> bool {
    *t == DEFAULT_TIMEOUT_MS
}

impl Default for KubetronNetConf {
    fn default() -> Self {
        KubetronNetConf {
            mode: None,
            agent_socket: None,
            logical_switch: None,
            network_id: None,
            capabilities: None,
            subnet: None,
            exclude_ips: None,
            ovs_socket: default_ovs_socket(),
            nb: None,
            bridge: default_bridge(),
            mtu: DEFAULT_MTU,
            dhcp: false,
            allow_persistent_ips: false,
            port_up_timeout_ms: DEFAULT_PORT_UP_TIMEOUT_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            nb_private_key: None,
            nb_certificate: None,
            nb_ca_cert: None,
            ip_masq: false,
            ipam: None,
            dns: None,
            extra: Map::new(),
        }
    }
}

/// A value kubetron's network config refuses. The CNI plugin answers all of these with code 7
/// (invalid network config), but [`NetConfError::Version`] (code 1 or 6, see [`VersionError`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetConfError {
    /// A field of the wrong JSON type (serde's message).
    #[error("invalid network config: {0}")]
    Parse(String),
    /// `cniVersion`.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// `name` is not a CNI network name.
    #[error("network name {0:?} is invalid: must start with a letter or digit, then letters, digits, '_', '.', '-'")]
    NetworkName(String),
    /// `logical_switch` is empty or blank.
    #[error("logical_switch is empty")]
    EmptyLogicalSwitch,
    /// `network_id` is empty, or set together with `nb`.
    #[error("network_id {0:?}: must be a Neutron network UUID, and is for the controller's neutron backend only (not with nb)")]
    NetworkId(String),
    /// An OVSDB remote of the wrong shape.
    #[error("{field} {remote:?} is not an OVSDB remote (unix:PATH, tcp:HOST:PORT, ssl:HOST:PORT)")]
    NotRemote {
        /// `ovs_socket` or `nb`.
        field: &'static str,
        /// The remote.
        remote: String,
    },
    /// `ovs_socket` is `ssl:`.
    #[error("ovs_socket {0:?}: ssl: is not supported for the local Open_vSwitch database (use unix: or tcp:)")]
    SslOvsSocket(String),
    /// A PEM file path that is empty.
    #[error("{0} is empty (a PEM file path)")]
    EmptyPemPath(&'static str),
    /// An `ssl:` Northbound remote without the three PEM files.
    #[error(
        "nb {nb:?} has an ssl: remote but the config lacks {missing} (PEM files: client private key, client certificate, CA certificate, as ovn-nbctl -p/-c/-C)"
    )]
    SslWithoutTls {
        /// The `nb` value.
        nb: String,
        /// The missing keys, comma-separated.
        missing: String,
    },
    /// One or two of the three PEM files.
    #[error("nb_private_key, nb_certificate and nb_ca_cert go together: {0} missing")]
    PartialTls(String),
    /// `agent_socket` is not an absolute path.
    #[error("agent_socket {0:?} is not an absolute path")]
    AgentSocket(String),
    /// `bridge` is not an interface name.
    #[error("bridge {0:?} is not a valid interface name")]
    Bridge(String),
    /// `mtu` out of range.
    #[error("mtu {0} is out of range 68..=65535")]
    Mtu(u32),
    /// `port_up_timeout_ms` out of range.
    #[error("port_up_timeout_ms {0} is out of range 0..={MAX_PORT_UP_TIMEOUT_MS} (0: do not wait)")]
    PortUpTimeout(u64),
    /// `timeout_ms` out of range.
    #[error(
        "timeout_ms {0} is out of range {MIN_TIMEOUT_MS}..={MAX_TIMEOUT_MS} (it must stay under the kubelet's 2-minute runtime request timeout)"
    )]
    Timeout(u64),
    /// A requested IP that is neither an address nor a CIDR.
    #[error("requested IP {0:?} is not an address or CIDR")]
    RequestedIp(String),
    /// `capabilities.ips` or `capabilities.mac` is not a boolean.
    #[error("capabilities.{0} must be true or false (capabilities is an object like {{\"ips\": true, \"mac\": true}})")]
    Capability(&'static str),
}

/// serde's message for a mistyped field does not say which field it is (`invalid type: integer `7`,
/// expected a string`): find the first field that fails alone and put its name in front.
fn name_the_field(fields: &Map<String, Value>, e: serde_json::Error) -> String {
    let culprit = fields.iter().find(|(k, v)| {
        let one: Map<String, Value> = std::iter::once(((*k).clone(), (*v).clone())).collect();
        serde_json::from_value::<KubetronNetConf>(Value::Object(one)).is_err()
    });
    match culprit {
        Some((k, _)) => format!("{k}: {e}"),
        None => e.to_string(),
    }
}

impl KubetronNetConf {
    /// Reads kubetron's plugin object (a NAD's, or an entry of a conflist): `type`, `name` and
    /// `cniVersion` are the caller's; the rest is typed, fitted ([`KubetronNetConf::fit_port_up_timeout`])
    /// and validated.
    pub fn from_plugin(plugin: &Map<String, Value>) -> Result<KubetronNetConf, NetConfError> {
        let fields: Map<String, Value> = plugin
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "type" | "name" | "cniVersion"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let explicit_port_up = fields.contains_key("port_up_timeout_ms");
        let mut conf: KubetronNetConf =
            serde_json::from_value(Value::Object(fields.clone())).map_err(|e| NetConfError::Parse(name_the_field(&fields, e)))?;
        conf.fit_port_up_timeout(explicit_port_up);
        conf.validate()?;
        Ok(conf)
    }

    /// The port-up wait shrinks to fit `timeout_ms`. An explicit value (`explicit`: the config
    /// names `port_up_timeout_ms`) that does not fit is clamped with a warning, never refused: DEL
    /// and GC run with the config saved at ADD time (Multus, CRI-O), so refusing a config that
    /// worked before would keep pods terminating forever. Values out of their own range are left
    /// for [`KubetronNetConf::validate`].
    pub fn fit_port_up_timeout(&mut self, explicit: bool) {
        let max_port_up = max_port_up_timeout_ms(self.timeout_ms);
        if self.port_up_timeout_ms > max_port_up && self.port_up_timeout_ms <= MAX_PORT_UP_TIMEOUT_MS {
            if explicit {
                tracing::warn!(
                    "port_up_timeout_ms {} leaves too little of timeout_ms {} for connecting, plugging and cleaning up; using {max_port_up}",
                    self.port_up_timeout_ms,
                    self.timeout_ms
                );
            }
            self.port_up_timeout_ms = max_port_up;
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), NetConfError> {
        if self.logical_switch.as_deref().is_some_and(|ls| ls.trim().is_empty()) {
            return Err(NetConfError::EmptyLogicalSwitch);
        }
        if let Some(id) = &self.network_id {
            if id.trim().is_empty() || id.contains(['/', '?', '&', ' ']) || self.nb.is_some() {
                return Err(NetConfError::NetworkId(id.clone()));
            }
        }
        check_remote("ovs_socket", &self.ovs_socket)?;
        if self.ovs_socket.starts_with("ssl:") {
            return Err(NetConfError::SslOvsSocket(self.ovs_socket.clone()));
        }
        if let Some(nb) = &self.nb {
            for r in nb.split(',') {
                check_remote("nb", r.trim())?;
            }
        }
        let tls_keys =
            [("nb_private_key", &self.nb_private_key), ("nb_certificate", &self.nb_certificate), ("nb_ca_cert", &self.nb_ca_cert)];
        if let Some((key, _)) = tls_keys.iter().find(|(_, v)| v.as_deref().is_some_and(|p| p.trim().is_empty())) {
            return Err(NetConfError::EmptyPemPath(key));
        }
        let missing: Vec<&str> = tls_keys.iter().filter(|(_, v)| v.is_none()).map(|(key, _)| *key).collect();
        if self.nb_uses_ssl() && !missing.is_empty() {
            return Err(NetConfError::SslWithoutTls { nb: self.nb.clone().unwrap_or_default(), missing: missing.join(", ") });
        }
        if missing.len() == 1 || missing.len() == 2 {
            return Err(NetConfError::PartialTls(missing.join(", ")));
        }
        if let Some(sock) = &self.agent_socket {
            if !sock.starts_with('/') || sock.contains('\0') {
                return Err(NetConfError::AgentSocket(sock.clone()));
            }
        }
        if self.bridge.is_empty() || self.bridge.len() > 15 || self.bridge.contains(['/', ':', ' ']) {
            return Err(NetConfError::Bridge(self.bridge.clone()));
        }
        if !(68..=65535).contains(&self.mtu) {
            return Err(NetConfError::Mtu(self.mtu));
        }
        if self.port_up_timeout_ms > MAX_PORT_UP_TIMEOUT_MS {
            return Err(NetConfError::PortUpTimeout(self.port_up_timeout_ms));
        }
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(NetConfError::Timeout(self.timeout_ms));
        }
        for key in ["ips", "mac"] {
            if self.capabilities.as_ref().and_then(|c| c.get(key)).is_some_and(|v| !v.is_boolean()) {
                return Err(NetConfError::Capability(key));
            }
        }
        Ok(())
    }

    /// The mode: `mode` when set; otherwise `standalone` when `nb` is set (what every config meant
    /// before modes existed), else `cluster`.
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or(if self.nb.is_some() { Mode::Standalone } else { Mode::Cluster })
    }

    /// The node agent's socket: `agent_socket`, or [`DEFAULT_AGENT_SOCKET`].
    pub fn agent_socket(&self) -> &str {
        self.agent_socket.as_deref().unwrap_or(DEFAULT_AGENT_SOCKET)
    }

    /// The OVN logical switch: `logical_switch`, or the network's name.
    pub fn logical_switch<'a>(&'a self, network_name: &'a str) -> &'a str {
        self.logical_switch.as_deref().unwrap_or(network_name)
    }

    /// What `capabilities` grant pods (`ips`, `mac`; absent: not granted).
    pub fn granted(&self) -> Capabilities {
        let get = |key: &str| self.capabilities.as_ref().and_then(|c| c.get(key)).and_then(Value::as_bool).unwrap_or(false);
        Capabilities { ips: get("ips"), mac: get("mac") }
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

    /// The plugin object: `{"type": "kubetron", <the fields that differ from the defaults>}`.
    pub fn to_plugin(&self) -> Map<String, Value> {
        let mut out = Map::from_iter([("type".to_string(), Value::from(PLUGIN_TYPE))]);
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            out.extend(fields);
        }
        out
    }
}

/// OVSDB remotes: `unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`.
fn check_remote(field: &'static str, r: &str) -> Result<(), NetConfError> {
    let ok = match r.split_once(':') {
        Some(("unix", path)) => !path.is_empty(),
        Some(("tcp" | "ssl", hp)) => hp.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(NetConfError::NotRemote { field, remote: r.to_string() })
    }
}

#[cfg(test)]
mod tests;

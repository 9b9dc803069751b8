//! The network configuration a plugin receives on stdin (spec 1.1.0): the runtime's envelope
//! (`cniVersion`, `name`, `type`, `args`, `runtimeConfig`, `prevResult`, GC's valid attachments)
//! around kubetron's own fields, [`model::netconf::KubetronNetConf`], whose rules live there.

use ipnet::IpNet;
use model::netconf::{args_ips, check_network_name, parse_requested_ip, KubetronNetConf, Version};
use model::status::Dns;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::CniError;
use crate::result::CniResult;

/// The capability under which containerd and CRI-O pass a pod's annotations in `runtimeConfig`.
pub const POD_ANNOTATIONS_CAPABILITY: &str = "io.kubernetes.cri.pod-annotations";

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
    /// Capability arguments from the runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<RuntimeConfig>,
    /// The previous plugin's (or ADD's) result, raw; typed in [`crate::Request::prev_result`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    /// GC: attachments that must be kept.
    #[serde(rename = "cni.dev/valid-attachments", default, skip_serializing_if = "Option::is_none")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// kubetron's fields (and the spec's `ipMasq`, `ipam`, `dns`, which a NAD's config carries too).
    #[serde(flatten)]
    pub kubetron: KubetronNetConf,
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
        conf.kubetron.fit_port_up_timeout(explicit_port_up);
        conf.validate()?;
        Ok(conf)
    }

    /// The spec version, parsed.
    pub fn version(&self) -> Result<Version, CniError> {
        Ok(Version::supported(&self.cni_version)?)
    }

    /// The OVN logical switch: `logical_switch`, or the network name.
    pub fn logical_switch(&self) -> &str {
        self.kubetron.logical_switch(&self.name)
    }

    /// The typed `prevResult`, if any.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        self.prev_result.as_ref().map(CniResult::from_value).transpose()
    }

    /// IPs requested by `runtimeConfig.ips` and `args.cni.ips` (plain addresses get a host prefix).
    pub fn requested_ips(&self) -> Result<Vec<IpNet>, CniError> {
        let mut out = Vec::new();
        let runtime = self.runtime_config.iter().flat_map(|r| r.ips.iter().map(String::as_str));
        for s in runtime.chain(self.args.iter().flat_map(args_ips)) {
            let net = parse_requested_ip(s)?;
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
        check_network_name(&self.name)?;
        if self.plugin_type.is_empty() {
            return Err(CniError::invalid_config("network config has an empty \"type\""));
        }
        self.kubetron.validate()?;
        if let Some(mac) = self.runtime_config.as_ref().and_then(|r| r.mac.as_deref()) {
            if model::mac::normalize(mac).is_none() {
                return Err(CniError::invalid_config(format!("runtimeConfig.mac {mac:?} is not a MAC address")));
            }
        }
        self.requested_ips()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use model::netconf::{cleanup_reserve_ms, Mode, DEFAULT_AGENT_SOCKET, DEFAULT_PORT_UP_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS};
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

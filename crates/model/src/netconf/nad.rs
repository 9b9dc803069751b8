//! A NAD's `spec.config`: one plugin or a conflist, with kubetron's plugin in it.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use thiserror::Error;

use super::{args_ips, check_network_name, is_kubetron, parse_requested_ip, KubetronNetConf, NetConfError, Version};

/// kubetron's network config from a NAD (see [`NadConfig::parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NadConfig {
    /// `cniVersion`, if given (of the list, else of kubetron's plugin).
    pub cni_version: Option<String>,
    /// CNI network name (`name`, or the NAD's name when the config has none).
    pub name: String,
    /// kubetron's plugin object.
    pub kubetron: KubetronNetConf,
    /// CNI capabilities (`portMappings`, `bandwidth`, ...) that other plugins chained in the same
    /// conflist declare (`"capabilities": {"portMappings": true}`): requests for them can be
    /// honoured by those plugins. kubetron itself honours only `ips` and `mac`.
    pub chain_capabilities: BTreeSet<String>,
    /// `"allowPersistentIPs": true` at the top of the config (where KubeVirt's ipam-extensions
    /// reads it; for a single plugin config that is kubetron's object) or in kubetron's plugin
    /// object of a conflist: pods may use IPAMClaims on this network.
    pub allow_persistent_ips: bool,
}

/// A NAD config that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NadConfigError {
    /// Not JSON.
    #[error("spec.config is not valid JSON: {0}")]
    Json(String),
    /// Not a JSON object.
    #[error("spec.config must be a JSON object")]
    NotObject,
    /// A conflist with more than one kubetron plugin.
    #[error("spec.config lists {0} kubetron plugins in \"plugins\"; only one is allowed")]
    SeveralPlugins(usize),
    /// A list-level field of the wrong type or value.
    #[error("spec.config field \"{field}\" {problem}")]
    Field {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// Refused by the network config rules ([`KubetronNetConf::validate`], the network name,
    /// `cniVersion`): the rules a node applies when it runs the plugin, so that no NAD is admitted
    /// that every ADD would then refuse.
    #[error("spec.config is not a kubetron network config the CNI plugin accepts: {0}")]
    NetConf(#[from] NetConfError),
}

fn field(field: &'static str, problem: &'static str) -> NadConfigError {
    NadConfigError::Field { field, problem }
}

fn opt_str(obj: &Map<String, Value>, name: &'static str) -> Result<Option<String>, NadConfigError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(field(name, "must be a string")),
    }
}

impl NadConfig {
    /// Parses `spec.config`. `Ok(None)` when it is empty or configures another plugin; single
    /// plugin configs and conflists (`plugins: [...]` with one kubetron entry) are accepted.
    /// `nad_name` is used when the config has no `name`.
    pub fn parse(config: &str, nad_name: &str) -> Result<Option<NadConfig>, NadConfigError> {
        if config.trim().is_empty() {
            return Ok(None);
        }
        let doc: Value = serde_json::from_str(config).map_err(|e| NadConfigError::Json(e.to_string()))?;
        let top = doc.as_object().ok_or(NadConfigError::NotObject)?;
        let mut chain_capabilities = BTreeSet::new();
        let (plugin, cni_version, name) = if is_kubetron(&doc) {
            (top, opt_str(top, "cniVersion")?, opt_str(top, "name")?)
        } else {
            let Some(plugins) = top.get("plugins") else { return Ok(None) };
            let plugins = plugins.as_array().ok_or_else(|| field("plugins", "must be an array"))?;
            let ours: Vec<&Value> = plugins.iter().filter(|p| is_kubetron(p)).collect();
            for other in plugins.iter().filter(|p| !is_kubetron(p)) {
                if let Some(caps) = other.get("capabilities").and_then(Value::as_object) {
                    chain_capabilities.extend(caps.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k.clone()));
                }
            }
            let plugin = match ours.as_slice() {
                [] => return Ok(None),
                [one] => one.as_object().ok_or(NadConfigError::NotObject)?,
                many => return Err(NadConfigError::SeveralPlugins(many.len())),
            };
            let name = match opt_str(top, "name")? {
                Some(n) => Some(n),
                None => opt_str(plugin, "name")?,
            };
            let version = match opt_str(top, "cniVersion")? {
                Some(v) => Some(v),
                None => opt_str(plugin, "cniVersion")?,
            };
            (plugin, version, name)
        };
        let name = name.filter(|n| !n.is_empty()).unwrap_or_else(|| nad_name.to_string());
        if name.is_empty() {
            return Err(field("name", "is missing"));
        }
        if let Some(v) = &cni_version {
            Version::supported(v).map_err(NetConfError::from)?;
        }
        check_network_name(&name)?;
        // `args` is the runtime's (the CNI plugin reads it with the request), but a NAD may carry
        // `args.cni.ips`, which the plugin would refuse on every ADD when malformed.
        if let Some(args) = plugin.get("args") {
            let args = args.as_object().ok_or_else(|| field("args", "must be an object"))?;
            for ip in args_ips(args) {
                parse_requested_ip(ip)?;
            }
        }
        let allow_persistent_ips = match top.get("allowPersistentIPs") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(field("allowPersistentIPs", "must be a boolean")),
        };
        let kubetron = KubetronNetConf::from_plugin(plugin)?;
        let allow_persistent_ips = allow_persistent_ips || kubetron.allow_persistent_ips;
        Ok(Some(NadConfig { cni_version, name, kubetron, chain_capabilities, allow_persistent_ips }))
    }

    /// The OVN logical switch: `logical_switch`, or the network name.
    pub fn logical_switch(&self) -> &str {
        self.kubetron.logical_switch(&self.name)
    }
}

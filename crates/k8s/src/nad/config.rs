//! Kubetron's CNI config inside a NAD's `spec.config`.

use serde_json::{Map, Value};
use thiserror::Error;

/// The CNI `type` of kubetron's plugin.
pub const PLUGIN_TYPE: &str = "kubetron";

/// Capabilities the network grants pods (CNI `capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// Pods may ask for static IPs.
    #[serde(default)]
    pub ips: bool,
    /// Pods may ask for a static MAC.
    #[serde(default)]
    pub mac: bool,
}

/// Kubetron's plugin config from a NAD.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KubetronConfig {
    /// `cniVersion`, if given.
    pub cni_version: Option<String>,
    /// CNI network name (`name`, or the NAD's name when the config has none).
    pub name: String,
    /// OVN logical switch to attach to (`logical_switch`, default: `name`).
    pub logical_switch: String,
    /// Granted capabilities (default: none).
    pub capabilities: Capabilities,
    /// CNI capabilities (`portMappings`, `bandwidth`, ...) that other plugins chained in the same
    /// conflist declare (`"capabilities": {"portMappings": true}`): requests for them can be
    /// honoured by those plugins. kubetron itself honours only `ips` and `mac`.
    #[serde(default)]
    pub chain_capabilities: std::collections::BTreeSet<String>,
    /// Every other key of the kubetron plugin object, verbatim (for the controller).
    pub extra: Map<String, Value>,
}

/// A NAD config that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Not JSON.
    #[error("spec.config is not valid JSON: {0}")]
    Json(String),
    /// Not a JSON object.
    #[error("spec.config must be a JSON object")]
    NotObject,
    /// A conflist with more than one kubetron plugin.
    #[error("spec.config lists {0} kubetron plugins in \"plugins\"; only one is allowed")]
    SeveralPlugins(usize),
    /// Refused by the CNI plugin's own reading of a network config (`cni::NetConf`): the rules a
    /// node applies when it runs the plugin, applied here too, so that no NAD is admitted that every
    /// ADD would then refuse.
    #[error("spec.config is not a kubetron network config the CNI plugin accepts: {0}")]
    Cni(String),
    /// A field of the wrong type or value.
    #[error("spec.config field \"{field}\" {problem}")]
    Field {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

fn field(field: &'static str, problem: &'static str) -> ConfigError {
    ConfigError::Field { field, problem }
}

fn opt_str(obj: &Map<String, Value>, name: &'static str) -> Result<Option<String>, ConfigError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(field(name, "must be a string")),
    }
}

fn is_kubetron(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE)
}

/// The kubetron plugin object as a node's runtime hands it to the plugin (with the conflist's
/// `cniVersion` and `name`), read by the plugin's own parser.
fn check_with_cni(plugin: &Map<String, Value>, cni_version: Option<&str>, name: &str) -> Result<(), ConfigError> {
    let mut conf = plugin.clone();
    conf.insert("cniVersion".into(), Value::from(cni_version.unwrap_or(cni::CURRENT_VERSION)));
    conf.insert("name".into(), Value::from(name));
    cni::NetConf::from_value(Value::Object(conf)).map(drop).map_err(|e| ConfigError::Cni(e.msg))
}

/// Parse `spec.config`. `Ok(None)` when it is empty or configures another plugin; single plugin
/// configs and conflists (`plugins: [...]` with one kubetron entry) are accepted.
/// `nad_name` is used when the config has no `name`.
pub fn parse_config(config: &str, nad_name: &str) -> Result<Option<KubetronConfig>, ConfigError> {
    if config.trim().is_empty() {
        return Ok(None);
    }
    let doc: Value = serde_json::from_str(config).map_err(|e| ConfigError::Json(e.to_string()))?;
    let top = doc.as_object().ok_or(ConfigError::NotObject)?;
    let mut chain_capabilities = std::collections::BTreeSet::new();
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
            [one] => one.as_object().ok_or(ConfigError::NotObject)?,
            many => return Err(ConfigError::SeveralPlugins(many.len())),
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
    let logical_switch = match opt_str(plugin, "logical_switch")? {
        Some(ls) if ls.trim().is_empty() => return Err(field("logical_switch", "must not be empty")),
        Some(ls) => ls,
        None => name.clone(),
    };
    let capabilities = match plugin.get("capabilities") {
        None | Some(Value::Null) => Capabilities::default(),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|_| field("capabilities", "must be an object like {\"ips\": true, \"mac\": true}"))?
        }
    };
    check_with_cni(plugin, cni_version.as_deref(), &name)?;
    let extra = plugin
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cniVersion" | "name" | "type" | "logical_switch" | "capabilities"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Some(KubetronConfig { cni_version, name, logical_switch, capabilities, chain_capabilities, extra }))
}

//! The CNI environment: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH,
//! validated per command (code 4 on failure, naming the variable).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::CniError;

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// ADD.
    Add,
    /// DEL.
    Del,
    /// CHECK.
    Check,
    /// STATUS (1.1.0).
    Status,
    /// GC (1.1.0).
    Gc,
    /// VERSION.
    Version,
}

impl FromStr for Command {
    type Err = CniError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            "" => return Err(CniError::invalid_env("CNI_COMMAND is missing")),
            other => return Err(CniError::invalid_env(format!("CNI_COMMAND {other:?} is unknown (ADD, DEL, CHECK, STATUS, GC, VERSION)"))),
        })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        })
    }
}

/// CNI_ARGS: `K=V;K2=V2`, with the Kubernetes keys typed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniArgs {
    /// K8S_POD_NAMESPACE.
    pub pod_namespace: Option<String>,
    /// K8S_POD_NAME.
    pub pod_name: Option<String>,
    /// K8S_POD_UID.
    pub pod_uid: Option<String>,
    /// K8S_POD_INFRA_CONTAINER_ID.
    pub infra_container_id: Option<String>,
    /// IgnoreUnknown: unknown keys are not an error.
    pub ignore_unknown: bool,
    /// Every pair, in order.
    pub pairs: Vec<(String, String)>,
}

const KNOWN_ARGS: [&str; 5] = ["K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_UID", "K8S_POD_INFRA_CONTAINER_ID", "IgnoreUnknown"];

impl CniArgs {
    /// Parses CNI_ARGS. A pair without `=` is an error; unknown keys are an error unless
    /// `IgnoreUnknown` is 1/true (as the reference plugins do).
    pub fn parse(s: &str) -> Result<CniArgs, CniError> {
        let mut a = CniArgs::default();
        for pair in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| CniError::invalid_env(format!("CNI_ARGS: {pair:?} is not KEY=VALUE")))?;
            if k.is_empty() {
                return Err(CniError::invalid_env(format!("CNI_ARGS: {pair:?} has an empty key")));
            }
            match k {
                "K8S_POD_NAMESPACE" => a.pod_namespace = Some(v.to_string()),
                "K8S_POD_NAME" => a.pod_name = Some(v.to_string()),
                "K8S_POD_UID" => a.pod_uid = Some(v.to_string()),
                "K8S_POD_INFRA_CONTAINER_ID" => a.infra_container_id = Some(v.to_string()),
                "IgnoreUnknown" => {
                    a.ignore_unknown = match v {
                        "1" | "true" | "True" | "TRUE" | "t" | "T" => true,
                        "0" | "false" | "False" | "FALSE" | "f" | "F" | "" => false,
                        _ => return Err(CniError::invalid_env(format!("CNI_ARGS: IgnoreUnknown={v:?} is not a boolean"))),
                    }
                }
                _ => {}
            }
            a.pairs.push((k.to_string(), v.to_string()));
        }
        if !a.ignore_unknown {
            if let Some((k, _)) = a.pairs.iter().find(|(k, _)| !KNOWN_ARGS.contains(&k.as_str())) {
                return Err(CniError::invalid_env(format!("CNI_ARGS: unknown key {k:?} (set IgnoreUnknown=1 to allow)")));
            }
        }
        Ok(a)
    }

    /// The value of any key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The validated environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// The operation.
    pub command: Command,
    /// CNI_CONTAINERID (ADD, DEL, CHECK).
    pub container_id: Option<String>,
    /// CNI_NETNS (required for ADD and CHECK; DEL may lack it).
    pub netns: Option<PathBuf>,
    /// CNI_IFNAME (ADD, DEL, CHECK).
    pub ifname: Option<String>,
    /// CNI_ARGS.
    pub args: CniArgs,
    /// CNI_PATH directories (required for GC).
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads and validates the environment from (name, value) pairs.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Env, CniError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let m: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.as_ref().starts_with("CNI_"))
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        let get = |k: &str| m.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let command: Command = get("CNI_COMMAND").unwrap_or("").parse()?;
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        let mut missing = Vec::new();
        let container_id = if needs_container { get("CNI_CONTAINERID") } else { None };
        let ifname = if needs_container { get("CNI_IFNAME") } else { None };
        let netns = if needs_container { get("CNI_NETNS") } else { None };
        if needs_container {
            if container_id.is_none() {
                missing.push("CNI_CONTAINERID");
            }
            if ifname.is_none() {
                missing.push("CNI_IFNAME");
            }
            if netns.is_none() && command != Command::Del {
                missing.push("CNI_NETNS");
            }
        }
        let path: Vec<PathBuf> =
            get("CNI_PATH").map(|p| p.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect()).unwrap_or_default();
        if command == Command::Gc && path.is_empty() {
            missing.push("CNI_PATH");
        }
        if !missing.is_empty() {
            return Err(CniError::invalid_env(format!("required environment variables missing for {command}: {}", missing.join(", "))));
        }
        if let Some(id) = container_id {
            if !valid_container_id(id) {
                return Err(CniError::invalid_env(format!(
                    "CNI_CONTAINERID {id:?} is invalid: must start with a letter or digit, then letters, digits, '_', '.', '-'"
                )));
            }
        }
        if let Some(n) = ifname {
            validate_ifname(n)?;
        }
        let args = if needs_container { CniArgs::parse(get("CNI_ARGS").unwrap_or(""))? } else { CniArgs::default() };
        Ok(Env {
            command,
            container_id: container_id.map(str::to_string),
            netns: netns.map(PathBuf::from),
            ifname: ifname.map(str::to_string),
            args,
            path,
        })
    }

    /// Reads the process environment (non-UTF-8 values are converted lossily).
    pub fn from_process() -> Result<Env, CniError> {
        Env::from_vars(std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())))
    }
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn valid_container_id(s: &str) -> bool {
    model::netconf::valid_network_name(s)
}

/// A valid Linux interface name, as the spec asks: the rule of [`model::names::check_ifname`]
/// (1..=15 bytes, not "." or "..", no '/', ':', '%', whitespace or control characters).
pub fn validate_ifname(n: &str) -> Result<(), CniError> {
    model::names::check_ifname(n).map_err(|why| CniError::invalid_env(format!("CNI_IFNAME {n:?} is invalid: it {why}")))
}

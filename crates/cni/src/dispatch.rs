//! The dispatcher: environment + stdin -> the plugin's method -> (exit code, stdout bytes).
//! Errors are printed as the spec's error JSON with exit code 1; a panic in the plugin becomes
//! error 999, never a crash.

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use serde_json::Value;

use crate::config::{Attachment, NetConf};
use crate::env::{Command, Env};
use crate::error::CniError;
use crate::result::CniResult;
use crate::version::VersionInfo;
use model::netconf::{Version, CURRENT_VERSION};

/// Everything a plugin method gets.
#[derive(Debug, Clone)]
pub struct Request {
    /// The validated environment.
    pub env: Env,
    /// The typed network config.
    pub config: NetConf,
    /// The config as received (for fields this crate does not type).
    pub raw_config: Value,
    /// `prevResult`, typed (ADD in a chain, DEL, CHECK).
    pub prev_result: Option<CniResult>,
}

impl Request {
    /// The command.
    pub fn command(&self) -> Command {
        self.env.command
    }
    /// CNI_CONTAINERID ("" for STATUS/GC).
    pub fn container_id(&self) -> &str {
        self.env.container_id.as_deref().unwrap_or("")
    }
    /// CNI_IFNAME ("" for STATUS/GC).
    pub fn ifname(&self) -> &str {
        self.env.ifname.as_deref().unwrap_or("")
    }
    /// CNI_NETNS (None for DEL without netns, STATUS, GC).
    pub fn netns(&self) -> Option<&Path> {
        self.env.netns.as_deref()
    }
    /// The config's spec version.
    pub fn version(&self) -> &str {
        &self.config.cni_version
    }

    /// A request from a validated environment and the network config as received: the config
    /// typed, its version checked against the verb, `prevResult` decoded (the dispatcher's and the
    /// node agent's one way of reading a call). Not for VERSION.
    pub fn from_parts(env: Env, raw: Value) -> Result<Request, CniError> {
        let config = NetConf::from_value(raw.clone())?;
        let version = config.version()?;
        let min = match env.command {
            Command::Check => Some(Version::V0_4_0),
            Command::Status | Command::Gc => Some(Version::V1_1_0),
            _ => None,
        };
        if let Some(min) = min {
            if version < min {
                return Err(CniError::incompatible_version(format!("{} needs cniVersion >= {min}, config is {version}", env.command)));
            }
        }
        let prev_result = match (env.command, config.prev_result()) {
            (_, Ok(p)) => p,
            // DEL must clean up as much as it can: an unreadable prevResult is not fatal there.
            (Command::Del, Err(e)) => {
                tracing::warn!(error = %e, "ignoring undecodable prevResult on DEL");
                None
            }
            (_, Err(e)) => return Err(e),
        };
        if env.command == Command::Check && prev_result.is_none() {
            return Err(CniError::invalid_config("CHECK needs prevResult in the network config"));
        }
        Ok(Request { env, config, raw_config: raw, prev_result })
    }
}

/// A CNI plugin. Methods are synchronous; an implementation may run a runtime inside.
pub trait Plugin {
    /// ADD: plug the container in; return the result (its `cniVersion` is set by the dispatcher).
    fn add(&self, req: &Request) -> Result<CniResult, CniError>;
    /// DEL: unplug; must succeed when things are already gone (and when CNI_NETNS is absent).
    fn del(&self, req: &Request) -> Result<(), CniError>;
    /// CHECK: verify against `req.prev_result` (always present for CHECK).
    fn check(&self, req: &Request) -> Result<(), CniError>;
    /// STATUS: Ok when ready for ADD; error 50/51 otherwise.
    fn status(&self, req: &Request) -> Result<(), CniError>;
    /// GC: release everything of this network not in `valid_attachments`.
    fn gc(&self, req: &Request, valid_attachments: &[Attachment]) -> Result<(), CniError>;
}

/// Runs one invocation: returns the process exit code (0 or 1) and what to print on stdout.
pub fn run<I, K, V>(vars: I, stdin: &[u8], plugin: &impl Plugin) -> (i32, Vec<u8>)
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let version_hint = stdin_version(stdin);
    match catch_unwind(AssertUnwindSafe(|| dispatch(vars, stdin, plugin))) {
        Ok(Ok(out)) => (0, out),
        Ok(Err(e)) => {
            tracing::warn!(code = e.code.code(), msg = %e.msg, details = %e.details, "CNI request failed");
            (1, e.to_json_bytes(&version_hint))
        }
        Err(p) => {
            let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            tracing::error!(panic = %what, "CNI plugin panicked");
            (1, CniError::internal("plugin panicked").with_details(what).to_json_bytes(&version_hint))
        }
    }
}

/// Runs the plugin as a process would: real environment, stdin, stdout. Returns the exit code.
pub fn run_process(plugin: &impl Plugin) -> i32 {
    let mut stdin = Vec::new();
    let vars: Vec<(String, String)> =
        std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect();
    let (code, out) = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => run(vars, &stdin, plugin),
        Err(e) => (1, CniError::io(format!("cannot read stdin: {e}")).to_json_bytes(CURRENT_VERSION)),
    };
    let mut so = std::io::stdout().lock();
    if so.write_all(&out).and_then(|_| so.flush()).is_err() {
        return 1;
    }
    code
}

/// The version to label an error with: the config's, if it is a supported one.
fn stdin_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_string))
        .filter(|s| Version::supported(s).is_ok())
        .unwrap_or_else(|| CURRENT_VERSION.to_string())
}

fn dispatch<I, K, V>(vars: I, stdin: &[u8], plugin: &impl Plugin) -> Result<Vec<u8>, CniError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let env = Env::from_vars(vars)?;
    if env.command == Command::Version {
        return version_output(stdin);
    }
    let raw: Value = serde_json::from_slice(stdin).map_err(|e| CniError::decode(format!("network config on stdin is not JSON: {e}")))?;
    let req = Request::from_parts(env, raw)?;
    tracing::debug!(command = %req.command(), container = req.container_id(), ifname = req.ifname(), network = %req.config.name, "CNI request");
    match req.command() {
        Command::Add => {
            let mut result = plugin.add(&req)?;
            result.cni_version = req.config.cni_version.clone();
            let v = result.to_version(&req.config.cni_version)?;
            serde_json::to_vec(&v).map_err(|e| CniError::internal(format!("cannot encode result: {e}")))
        }
        Command::Del => plugin.del(&req).map(|_| Vec::new()),
        Command::Check => plugin.check(&req).map(|_| Vec::new()),
        Command::Status => plugin.status(&req).map(|_| Vec::new()),
        Command::Gc => {
            let valid = req.config.valid_attachments.clone().unwrap_or_default();
            plugin.gc(&req, &valid).map(|_| Vec::new())
        }
        Command::Version => unreachable!("handled above"),
    }
}

/// VERSION: stdin may carry `{"cniVersion": "..."}` (or nothing); the answer lists what we support.
fn version_output(stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    if !stdin.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(stdin).map_err(|e| CniError::decode(format!("VERSION input is not JSON: {e}")))?;
        if let Some(s) = v.get("cniVersion").and_then(Value::as_str) {
            Version::parse(s)?;
        }
    }
    serde_json::to_vec(&VersionInfo::current()).map_err(|e| CniError::internal(format!("cannot encode version info: {e}")))
}

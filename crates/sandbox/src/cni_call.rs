//! Runs the CNI plugin exactly as a container runtime does: CNI_* environment, the network config
//! on stdin, inside the node's network namespace; the result (or the spec's error) on stdout.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::Error;

/// One plugin invocation.
pub struct CniCall<'a> {
    pub plugin: &'a Path,
    pub node_netns: &'a str,
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub args: &'a str,
}

impl CniCall<'_> {
    /// Runs it; a non-zero exit becomes an error carrying the plugin's message.
    pub fn run(&self, config: &Value) -> Result<Value, Error> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.node_netns])
            .arg(self.plugin)
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", self.container_id)
            .env("CNI_IFNAME", self.ifname)
            .env("CNI_PATH", "/usr/lib/cni")
            .env("CNI_ARGS", self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = self.netns {
            c.env("CNI_NETNS", n);
        }
        let mut child = c.spawn().map_err(|e| Error::Step(format!("running {}: {e}", self.plugin.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(config.to_string().as_bytes()).map_err(|e| Error::Step(format!("writing the config: {e}")))?;
        }
        let out = child.wait_with_output().map_err(|e| Error::Step(format!("waiting for the plugin: {e}")))?;
        let body: Value = if out.stdout.is_empty() { Value::Null } else { serde_json::from_slice(&out.stdout).unwrap_or(Value::Null) };
        if !out.status.success() {
            let msg = body["msg"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned());
            return Err(Error::Step(format!("CNI {} {} failed (code {}): {msg}", self.command, self.ifname, body["code"])));
        }
        Ok(body)
    }
}

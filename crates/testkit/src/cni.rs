//! Running a CNI plugin the way a container runtime does: a fresh process with the `CNI_*` variables
//! in its environment (and nothing else of the caller's, unless asked), the network config on stdin,
//! optionally inside a node's network namespace; its exit code, stdout (the result, or the spec's
//! error object) and stderr are collected, and a bound on its run time kills it.
//!
//! ```no_run
//! use testkit::cni::CniInvocation;
//! let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "red", "type": "kubetron"});
//! let out = CniInvocation::new("/opt/cni/bin/kubetron", "ADD")
//!     .in_named_netns("node1")
//!     .container_id("c1")
//!     .netns("/run/netns/pod1")
//!     .ifname("net1")
//!     .args("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=a")
//!     .config(&conf)
//!     .timeout(std::time::Duration::from_secs(60))
//!     .run()
//!     .expect("the plugin ran");
//! assert!(out.success(), "{out:?}");
//! ```

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// `CNI_PATH` unless [`CniInvocation::cni_path`] says otherwise: where Debian's reference plugins live.
pub const DEFAULT_CNI_PATH: &str = "/usr/lib/cni";
/// `PATH` of the plugin when the caller has none.
const FALLBACK_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the plugin process runs.
#[derive(Debug, Clone, Default)]
pub enum RunsIn {
    /// The caller's network namespace.
    #[default]
    Current,
    /// A named network namespace, entered by `ip netns exec NAME` (which execs the plugin).
    Named(String),
    /// The network namespace behind an open file (`/run/netns/NAME`), entered with `setns` between
    /// fork and exec: no extra program runs (what a benchmark wants).
    File(Arc<File>),
}

/// One plugin run, built up and then [`run`](CniInvocation::run).
///
/// The environment is clean by default: `PATH` (the caller's) and the `CNI_*` variables only;
/// [`inherit_env`](CniInvocation::inherit_env) keeps the caller's environment instead, without any
/// `CNI_*` variable of its own.
#[derive(Debug, Clone)]
pub struct CniInvocation {
    plugin: PathBuf,
    command: String,
    container_id: Option<String>,
    netns: Option<PathBuf>,
    ifname: Option<String>,
    args: Option<String>,
    cni_path: String,
    env: Vec<(String, String)>,
    inherit_env: bool,
    stdin: Vec<u8>,
    runs_in: RunsIn,
    wrapper: Vec<OsString>,
    timeout: Option<Duration>,
}

impl CniInvocation {
    /// `plugin` run with `CNI_COMMAND=command`, no other `CNI_*` variable but `CNI_PATH`, empty stdin.
    pub fn new(plugin: impl AsRef<Path>, command: &str) -> CniInvocation {
        CniInvocation {
            plugin: plugin.as_ref().to_path_buf(),
            command: command.to_string(),
            container_id: None,
            netns: None,
            ifname: None,
            args: None,
            cni_path: DEFAULT_CNI_PATH.to_string(),
            env: Vec::new(),
            inherit_env: false,
            stdin: Vec::new(),
            runs_in: RunsIn::Current,
            wrapper: Vec::new(),
            timeout: None,
        }
    }

    /// `CNI_CONTAINERID`.
    pub fn container_id(mut self, id: &str) -> Self {
        self.container_id = Some(id.to_string());
        self
    }

    /// `CNI_NETNS`: the pod's network namespace path.
    pub fn netns(mut self, path: impl AsRef<Path>) -> Self {
        self.netns = Some(path.as_ref().to_path_buf());
        self
    }

    /// `CNI_IFNAME`.
    pub fn ifname(mut self, ifname: &str) -> Self {
        self.ifname = Some(ifname.to_string());
        self
    }

    /// `CNI_ARGS` (`K=V;K2=V2`).
    pub fn args(mut self, args: &str) -> Self {
        self.args = Some(args.to_string());
        self
    }

    /// `CNI_PATH` (default [`DEFAULT_CNI_PATH`]).
    pub fn cni_path(mut self, path: &str) -> Self {
        self.cni_path = path.to_string();
        self
    }

    /// One more environment variable; set after the `CNI_*` ones, so it may override them.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Keeps the caller's environment (minus its `CNI_*` variables), as libcni does.
    pub fn inherit_env(mut self) -> Self {
        self.inherit_env = true;
        self
    }

    /// The network config on stdin.
    pub fn config(mut self, config: &Value) -> Self {
        self.stdin = config.to_string().into_bytes();
        self
    }

    /// Stdin as given (for configs that are not JSON).
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    /// Runs the plugin inside the named network namespace (`ip netns exec NAME`).
    pub fn in_named_netns(mut self, name: &str) -> Self {
        self.runs_in = RunsIn::Named(name.to_string());
        self
    }

    /// Runs the plugin inside the network namespace of `file` (`setns` before exec).
    pub fn in_netns_file(mut self, file: Arc<File>) -> Self {
        self.runs_in = RunsIn::File(file);
        self
    }

    /// Runs the plugin under `wrapper` (a program and its arguments, e.g. `strace -f -o FILE`).
    pub fn wrapped_in(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(OsString::from).collect();
        self
    }

    /// Kills the plugin after `bound` ([`InvokeError::TimedOut`]).
    pub fn timeout(mut self, bound: Duration) -> Self {
        self.timeout = Some(bound);
        self
    }

    /// The command: the program and its arguments, and the environment.
    fn command_line(&self) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if let RunsIn::Named(name) = &self.runs_in {
            argv.extend(["ip", "netns", "exec", name.as_str()].map(OsString::from));
        }
        argv.extend(self.wrapper.iter().cloned());
        argv.push(self.plugin.clone().into_os_string());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        if self.inherit_env {
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("CNI_") {
                    c.env_remove(k);
                }
            }
        } else {
            let path = std::env::var_os("PATH").filter(|p| !p.is_empty()).unwrap_or_else(|| FALLBACK_PATH.into());
            c.env_clear().env("PATH", path);
        }
        c.env("CNI_COMMAND", &self.command);
        if let Some(id) = &self.container_id {
            c.env("CNI_CONTAINERID", id);
        }
        if let Some(n) = &self.netns {
            c.env("CNI_NETNS", n);
        }
        if let Some(i) = &self.ifname {
            c.env("CNI_IFNAME", i);
        }
        if let Some(a) = &self.args {
            c.env("CNI_ARGS", a);
        }
        c.env("CNI_PATH", &self.cni_path);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let RunsIn::File(f) = &self.runs_in {
            let fd = f.as_raw_fd();
            // SAFETY: only setns (async-signal-safe) runs between fork and exec; the Arc keeps the fd
            // open in the parent for the whole spawn.
            unsafe {
                c.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Runs the plugin to its end (or to the timeout). A non-zero exit is an outcome, not an error.
    pub fn run(&self) -> Result<CniOutcome, InvokeError> {
        let mut cmd = self.command_line();
        let started = Instant::now();
        // A plugin a test has just written can be "text file busy" for a moment: another test thread
        // forked while the file was open for writing, and the child holds that descriptor until it
        // execs. Transient; retried within a bound (a runtime runs installed plugins, never this).
        let mut busy = 0;
        let mut child = loop {
            match cmd.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && busy < 100 => {
                    busy += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => break r.map_err(|source| InvokeError::Spawn { program: self.plugin.clone(), source })?,
            }
        };
        let stdin = child.stdin.take();
        let (status, stdout, stderr) = match self.timeout {
            None => {
                if let Some(mut pipe) = stdin {
                    if let Err(e) = write_stdin(&mut pipe, &self.stdin) {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(e);
                    }
                }
                let out = child.wait_with_output().map_err(InvokeError::Wait)?;
                (out.status, out.stdout, out.stderr)
            }
            Some(bound) => {
                let input = self.stdin.clone();
                let writer = stdin.map(|mut pipe| std::thread::spawn(move || write_stdin(&mut pipe, &input)));
                let out = reader(child.stdout.take());
                let err = reader(child.stderr.take());
                let status = wait_bounded(&mut child, started, bound).map_err(|e| match e {
                    Bounded::Io(e) => InvokeError::Wait(e),
                    Bounded::Killed => InvokeError::TimedOut { command: self.command.clone(), bound },
                })?;
                if let Some(w) = writer {
                    w.join().map_err(|_| InvokeError::Stdin(std::io::Error::other("stdin writer panicked")))??;
                }
                (status, join(out), join(err))
            }
        };
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let json = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap_or_else(|_| Value::String(stdout.clone()))
        };
        Ok(CniOutcome {
            exit_code: status.code().unwrap_or(-1),
            json,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        })
    }
}

/// Writes stdin and closes it; a plugin that exits without reading it is not an error (as Go's exec).
fn write_stdin(pipe: &mut impl Write, bytes: &[u8]) -> Result<(), InvokeError> {
    match pipe.write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(InvokeError::Stdin(e)),
        _ => Ok(()),
    }
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            buf
        })
    })
}

fn join(h: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    h.and_then(|h| h.join().ok()).unwrap_or_default()
}

enum Bounded {
    Io(std::io::Error),
    Killed,
}

/// Waits for the child until `started + bound`; then kills it (by its handle: it is not reaped yet,
/// so the pid is still its) and reaps it.
fn wait_bounded(child: &mut Child, started: Instant, bound: Duration) -> Result<std::process::ExitStatus, Bounded> {
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait().map_err(Bounded::Io)? {
            return Ok(st);
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Bounded::Killed);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// What one plugin run gave back.
#[derive(Debug, Clone)]
pub struct CniOutcome {
    /// The exit code (-1 when a signal ended it).
    pub exit_code: i32,
    /// Stdout as JSON: `Null` when empty, a JSON string holding the text when it is not JSON.
    pub json: Value,
    /// Stdout as text.
    pub stdout: String,
    /// Stderr as text (the plugin's log).
    pub stderr: String,
    /// From spawn to exit.
    pub elapsed: Duration,
}

impl CniOutcome {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// The spec's error object, when the plugin failed and printed one.
    pub fn error(&self) -> Option<CniError> {
        if self.success() {
            return None;
        }
        CniError::deserialize(&self.json).ok()
    }
}

/// The CNI spec's error object (`code` 1..=99 are the spec's, 100+ the plugin's).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CniError {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: Option<String>,
    pub code: u64,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

/// The plugin could not be run, or did not end in time.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("running {}: {source}", program.display())]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("writing the config to the plugin: {0}")]
    Stdin(std::io::Error),
    #[error("waiting for the plugin: {0}")]
    Wait(std::io::Error),
    #[error("{command} did not return within {bound:?}: killed")]
    TimedOut { command: String, bound: Duration },
}

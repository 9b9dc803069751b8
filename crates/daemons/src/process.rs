//! Generic daemon process handling: start an Open vSwitch style daemon detached with a pid file
//! and log file (optionally inside a network namespace), read pid files, stop a daemon by pid
//! (SIGTERM, bounded wait, then SIGKILL; a zombie counts as stopped), and wait for its sockets.
//!
//! Never stops a process by name: only by the pid recorded in the pid file of a daemon it started.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::Error;

/// A daemon to start with `--detach --pidfile=F --log-file=L --no-chdir`.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// Program, e.g. `ovsdb-server`.
    pub program: String,
    /// Arguments other than the detach/pidfile/log-file/no-chdir ones.
    pub args: Vec<String>,
    pub pidfile: PathBuf,
    pub logfile: PathBuf,
    /// Run inside this network namespace (`ip netns exec NS ...`).
    pub netns: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl DaemonSpec {
    pub fn new(program: &str, pidfile: impl Into<PathBuf>, logfile: impl Into<PathBuf>) -> DaemonSpec {
        DaemonSpec {
            program: program.to_string(),
            args: vec![],
            pidfile: pidfile.into(),
            logfile: logfile.into(),
            netns: None,
            env: vec![],
        }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<S: Into<String>>(mut self, a: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn netns(mut self, ns: Option<String>) -> Self {
        self.netns = ns;
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// The full command line.
    pub fn command_line(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(ns) = &self.netns {
            v.extend(["ip".to_string(), "netns".into(), "exec".into(), ns.clone()]);
        }
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v.push("--detach".into());
        v.push(format!("--pidfile={}", self.pidfile.display()));
        v.push(format!("--log-file={}", self.logfile.display()));
        v.push("--no-chdir".into());
        v
    }

    /// Starts the daemon; returns its pid once the pid file names a live process.
    pub fn spawn(&self) -> Result<i32, Error> {
        let argv = self.command_line();
        let out = run_argv(&argv, &self.env)?;
        if !out.status.success() {
            let log_tail = tail(&self.logfile, 20);
            return Err(Error::Command {
                cmd: argv.join(" "),
                status: out.status.code().unwrap_or(-1),
                stderr: format!("{}{}", String::from_utf8_lossy(&out.stderr), log_tail),
            });
        }
        // With --detach the parent exits after the pid file is written.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = read_pidfile(&self.pidfile)? {
                if is_running(pid) {
                    return Ok(pid);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady(format!("{} wrote no live pid to {}", self.program, self.pidfile.display())));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn run_argv(argv: &[String], env: &[(String, String)]) -> Result<std::process::Output, Error> {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(std::process::Stdio::null());
    c.output().map_err(|e| Error::Spawn { cmd: argv.join(" "), source: e })
}

/// Runs a command to completion; error (with its stderr) if it fails. Returns stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let argv: Vec<String> = std::iter::once(program.to_string()).chain(args.iter().map(|s| s.to_string())).collect();
    let out = run_argv(&argv, &[])?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: argv.join(" "),
            status: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let v: Vec<&str> = s.lines().collect();
            let start = v.len().saturating_sub(lines);
            format!("\nlast lines of {}:\n{}", path.display(), v[start..].join("\n"))
        }
        Err(_) => String::new(),
    }
}

/// Reads a pid file; `None` if it does not exist.
pub fn read_pidfile(path: &Path) -> Result<Option<i32>, Error> {
    match std::fs::read_to_string(path) {
        // The first line (PostgreSQL's postmaster.pid has more lines after the pid).
        Ok(s) => s
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .parse::<i32>()
            .map(Some)
            .map_err(|_| Error::NotReady(format!("bad pid file {}: {s:?}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { path: path.to_path_buf(), source: e }),
    }
}

/// Whether `pid` is a live process (a zombie is not).
pub fn is_running(pid: i32) -> bool {
    if pid <= 0 || kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(s) => s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(true),
        Err(_) => false,
    }
}

/// Waits up to `timeout` for `pid` to stop.
pub fn wait_stopped(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Stops `pid`: SIGTERM, wait up to `timeout`, then SIGKILL.
pub fn stop_pid(pid: i32, timeout: Duration) -> Result<(), Error> {
    if !is_running(pid) {
        return Ok(());
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    // A process stopped with SIGSTOP (see [`pause_pid`]) acts on SIGTERM only once continued.
    let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
    if wait_stopped(pid, timeout) {
        return Ok(());
    }
    kill_pid(pid)
}

/// SIGKILLs `pid` and waits until it is gone (or a zombie).
pub fn kill_pid(pid: i32) -> Result<(), Error> {
    if !is_running(pid) {
        return Ok(());
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    if wait_stopped(pid, Duration::from_secs(5)) {
        Ok(())
    } else {
        Err(Error::NotReady(format!("process {pid} survived SIGKILL")))
    }
}

/// SIGSTOPs `pid`: it keeps its sockets (the kernel still accepts connections into their
/// backlog) but answers nothing, like a hung server. [`resume_pid`] continues it.
pub fn pause_pid(pid: i32) -> Result<(), Error> {
    kill(Pid::from_raw(pid), Signal::SIGSTOP).map_err(|e| Error::NotReady(format!("SIGSTOP {pid}: {e}")))
}

/// SIGCONTs `pid` (after [`pause_pid`]).
pub fn resume_pid(pid: i32) -> Result<(), Error> {
    kill(Pid::from_raw(pid), Signal::SIGCONT).map_err(|e| Error::NotReady(format!("SIGCONT {pid}: {e}")))
}

/// Stops the daemon named by a pid file (if any).
pub fn stop_pidfile(pidfile: &Path, timeout: Duration) -> Result<(), Error> {
    match read_pidfile(pidfile)? {
        Some(pid) => stop_pid(pid, timeout),
        None => Ok(()),
    }
}

/// Waits until a unix socket accepts connections. With `netns`, the socket file is still
/// reachable from here (unix sockets are not namespaced by network namespaces).
pub fn wait_for_unix_socket(path: &Path, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::NotReady(format!("unix socket {} not accepting after {timeout:?}", path.display())));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until a TCP port on 127.0.0.1 accepts connections (root network namespace only).
pub fn wait_for_tcp(port: u16, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::NotReady(format!("tcp 127.0.0.1:{port} not accepting after {timeout:?}")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops the process group led by the pid in `pidfile` (a [`GroupLeader`] left running by a
/// spawner that exited, [`GroupLeader::detach`]): SIGTERM to the group, up to `grace` for the
/// leader to exit, then SIGKILL to what is left. Only when that pid still leads its own group (a
/// reused pid is left alone).
pub fn stop_group_pidfile(pidfile: &Path, grace: Duration) -> Result<(), Error> {
    let Some(pid) = read_pidfile(pidfile)? else { return Ok(()) };
    let leader = Pid::from_raw(pid);
    if !is_running(pid) || nix::unistd::getpgid(Some(leader)).ok() != Some(leader) {
        return Ok(());
    }
    let _ = nix::sys::signal::killpg(leader, Signal::SIGTERM);
    wait_stopped(pid, grace);
    let _ = nix::sys::signal::killpg(leader, Signal::SIGKILL);
    Ok(())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::Io { path: PathBuf::from("127.0.0.1:0"), source: e })?;
    l.local_addr().map(|a| a.port()).map_err(|e| Error::Io { path: PathBuf::from("127.0.0.1:0"), source: e })
}

/// A child process that leads its own process group (the workers it forks share the group),
/// its pid in `pidfile`; stopped with the group ([`GroupLeader::stop`], also on drop), never by name.
#[derive(Debug)]
pub struct GroupLeader {
    name: &'static str,
    child: std::process::Child,
    grace: Duration,
    stopped: bool,
}

impl GroupLeader {
    /// Spawns `cmd` (stdin null, stdout and stderr to `log`) as the leader of a new process group
    /// and writes its pid to `pidfile`; `grace` bounds the wait after SIGTERM.
    pub fn spawn(name: &'static str, mut cmd: Command, log: &Path, pidfile: &Path, grace: Duration) -> Result<GroupLeader, Error> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).map_err(|e| Error::Io { path: log.into(), source: e })?;
        let err = out.try_clone().map_err(|e| Error::Io { path: log.into(), source: e })?;
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Spawn { cmd: name.into(), source: e })?;
        let leader = GroupLeader { name, child, grace, stopped: false };
        std::fs::write(pidfile, format!("{}\n", leader.pid())).map_err(|e| Error::Io { path: pidfile.into(), source: e })?;
        Ok(leader)
    }

    /// Leaves the group running (its pid file stays; [`stop_group_pidfile`] stops it later).
    pub fn detach(mut self) {
        self.stopped = true;
    }

    /// The leader's pid (the group's ID).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether the leader still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `ready` (every 100 ms, up to `timeout`) until it answers `Ok`; its `Err` says what is
    /// still missing (for the timeout's message). Fails at once when the leader exits (`log`: where
    /// to look).
    pub fn wait_ready(&mut self, timeout: Duration, log: &Path, mut ready: impl FnMut() -> Result<(), String>) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.running() {
                return Err(Error::NotReady(format!("{} exited; see {}", self.name, log.display())));
            }
            let missing = match ready() {
                Ok(()) => return Ok(()),
                Err(m) => m,
            };
            if Instant::now() > deadline {
                return Err(Error::NotReady(format!("{} not ready within {timeout:?}: {missing}", self.name)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to the group, up to the grace for the leader to exit, then SIGKILL to whatever of
    /// the group is left; reaps the leader (idempotent).
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let group = Pid::from_raw(self.pid());
        let _ = nix::sys::signal::killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
        self.child.wait().map(|_| ()).map_err(|e| Error::NotReady(format!("waiting for {} ({}): {e}", self.name, self.pid())))
    }
}

impl Drop for GroupLeader {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping {}: {e}", self.name);
        }
    }
}

//! ovsdb-server instances (standalone or raft members) under a state directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::process::{self, DaemonSpec};
use crate::Error;

/// PEM files for a `pssl:` remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssl {
    pub private_key: PathBuf,
    pub certificate: PathBuf,
    pub ca_cert: PathBuf,
}

/// The memory allocator ovsdb-server and ovn-northd run with.
///
/// glibc's malloc makes ovsdb-server's and ovn-northd's per-row work grow several times over once
/// the database holds ~100k rows (measured by `bench/controller`: most of their CPU goes to
/// `_int_malloc` in a large heap); Open vSwitch's install guide suggests jemalloc for
/// ovsdb-server. [`Allocator::Jemalloc`] preloads Debian's `libjemalloc.so.2` (package
/// `libjemalloc2`) into the unchanged Debian binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocator {
    /// As the binary was built (glibc malloc for Debian's).
    #[default]
    System,
    /// `LD_PRELOAD` of `libjemalloc.so.2`.
    Jemalloc,
}

impl Allocator {
    /// Environment variable naming the default allocator of ovsdb-servers and ovn-northd: `system`
    /// (the default) or `jemalloc`.
    pub const ENV: &'static str = "KUBETRON_OVSDB_ALLOCATOR";

    /// The allocator [`Allocator::ENV`] names (unset or empty: [`Allocator::System`]).
    pub fn from_env() -> Result<Allocator, Error> {
        match std::env::var(Self::ENV).unwrap_or_default().as_str() {
            "" | "system" => Ok(Allocator::System),
            "jemalloc" => Ok(Allocator::Jemalloc),
            other => Err(Error::Missing(format!("{}={other}: expected system or jemalloc", Self::ENV))),
        }
    }

    /// `spec` running with this allocator.
    pub(crate) fn apply(self, mut spec: DaemonSpec) -> Result<DaemonSpec, Error> {
        for (k, v) in self.env()? {
            spec = spec.env(&k, &v);
        }
        Ok(spec)
    }

    /// Environment for a daemon using this allocator.
    fn env(self) -> Result<Vec<(String, String)>, Error> {
        match self {
            Allocator::System => Ok(vec![]),
            Allocator::Jemalloc => {
                let lib = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"]
                    .iter()
                    .map(|d| Path::new(d).join("libjemalloc.so.2"))
                    .find(|p| p.exists())
                    .ok_or_else(|| Error::Missing("libjemalloc.so.2 (Debian package libjemalloc2) for ovsdb-server".into()))?;
                Ok(vec![("LD_PRELOAD".into(), lib.display().to_string())])
            }
        }
    }
}

/// How to run one ovsdb-server.
#[derive(Debug, Clone)]
pub struct OvsdbServerConfig {
    /// File stem: `DIR/NAME.db`, `.sock`, `.pid`, `.log`, `.ctl`.
    pub name: String,
    /// State directory (created if missing).
    pub dir: PathBuf,
    /// Schema used to create the database file if it does not exist.
    pub schema: PathBuf,
    /// Also listen on `ptcp:PORT:127.0.0.1` (a free port).
    pub tcp: bool,
    /// Also listen on `pssl:PORT:127.0.0.1` with these files.
    pub ssl: Option<Ssl>,
    /// Run inside this network namespace.
    pub netns: Option<String>,
    /// Use this database file instead of `DIR/NAME.db` (e.g. a raft member's file).
    pub db_file: Option<PathBuf>,
    /// More ovsdb-server arguments.
    pub extra_args: Vec<String>,
    /// Memory allocator; `None`: [`Allocator::from_env`].
    pub allocator: Option<Allocator>,
}

impl OvsdbServerConfig {
    pub fn new(name: &str, dir: impl Into<PathBuf>, schema: impl Into<PathBuf>) -> OvsdbServerConfig {
        OvsdbServerConfig {
            name: name.to_string(),
            dir: dir.into(),
            schema: schema.into(),
            tcp: false,
            ssl: None,
            netns: None,
            db_file: None,
            extra_args: vec![],
            allocator: None,
        }
    }
    pub fn allocator(mut self, a: Allocator) -> Self {
        self.allocator = Some(a);
        self
    }
    pub fn tcp(mut self, yes: bool) -> Self {
        self.tcp = yes;
        self
    }
    pub fn ssl(mut self, ssl: Ssl) -> Self {
        self.ssl = Some(ssl);
        self
    }
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_string());
        self
    }
}

/// A running ovsdb-server. Dropping it stops it.
#[derive(Debug)]
pub struct OvsdbServer {
    config: OvsdbServerConfig,
    db: PathBuf,
    sock: PathBuf,
    pidfile: PathBuf,
    logfile: PathBuf,
    ctl: PathBuf,
    tcp_port: Option<u16>,
    ssl_port: Option<u16>,
    pid: Option<i32>,
}

const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(15);

impl OvsdbServer {
    /// Creates the database file if needed and starts the server; returns once its sockets accept.
    pub fn start(config: OvsdbServerConfig) -> Result<OvsdbServer, Error> {
        std::fs::create_dir_all(&config.dir).map_err(|e| Error::Io { path: config.dir.clone(), source: e })?;
        let f = |ext: &str| config.dir.join(format!("{}.{ext}", config.name));
        let db = config.db_file.clone().unwrap_or_else(|| f("db"));
        if !db.exists() {
            process::run("ovsdb-tool", &["create", &db.to_string_lossy(), &config.schema.to_string_lossy()])?;
        }
        let mut s = OvsdbServer {
            db,
            sock: f("sock"),
            pidfile: f("pid"),
            logfile: f("log"),
            ctl: f("ctl"),
            tcp_port: None,
            ssl_port: None,
            pid: None,
            config,
        };
        // A port picked as free may be taken by the time the server binds it: retry with others.
        let mut last = None;
        for _ in 0..4 {
            s.tcp_port = if s.config.tcp { Some(process::free_tcp_port()?) } else { None };
            s.ssl_port = if s.config.ssl.is_some() { Some(process::free_tcp_port()?) } else { None };
            match s.launch() {
                Ok(()) => return Ok(s),
                Err(e) => {
                    debug!("ovsdb-server start failed, retrying: {e}");
                    s.stop_quietly();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::NotReady("ovsdb-server did not start".into())))
    }

    fn spec(&self) -> Result<DaemonSpec, Error> {
        let allocator = match self.config.allocator {
            Some(a) => a,
            None => Allocator::from_env()?,
        };
        let mut spec = DaemonSpec::new("ovsdb-server", &self.pidfile, &self.logfile)
            .arg(self.db.to_string_lossy())
            .arg(format!("--remote=punix:{}", self.sock.display()))
            .arg(format!("--unixctl={}", self.ctl.display()))
            .netns(self.config.netns.clone());
        if let Some(p) = self.tcp_port {
            spec = spec.arg(format!("--remote=ptcp:{p}:127.0.0.1"));
        }
        if let (Some(p), Some(ssl)) = (self.ssl_port, &self.config.ssl) {
            spec = spec
                .arg(format!("--remote=pssl:{p}:127.0.0.1"))
                .arg(format!("--private-key={}", ssl.private_key.display()))
                .arg(format!("--certificate={}", ssl.certificate.display()))
                .arg(format!("--ca-cert={}", ssl.ca_cert.display()));
        }
        Ok(allocator.apply(spec)?.args(self.config.extra_args.iter().cloned()))
    }

    fn launch(&mut self) -> Result<(), Error> {
        // A SIGKILLed server leaves its socket behind.
        let _ = std::fs::remove_file(&self.sock);
        let pid = self.spec()?.spawn()?;
        self.pid = Some(pid);
        process::wait_for_unix_socket(&self.sock, READY_TIMEOUT)?;
        if self.config.netns.is_none() {
            for p in [self.tcp_port, self.ssl_port].into_iter().flatten() {
                process::wait_for_tcp(p, READY_TIMEOUT)?;
            }
        }
        // The listeners may be up while the process died right after (e.g. port clash on the
        // second remote): check it is still alive.
        if !process::is_running(pid) {
            return Err(Error::NotReady(format!("ovsdb-server exited; see {}", self.logfile.display())));
        }
        Ok(())
    }

    fn stop_quietly(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = process::stop_pid(pid, STOP_TIMEOUT);
        }
    }

    pub fn config(&self) -> &OvsdbServerConfig {
        &self.config
    }
    pub fn db_path(&self) -> &Path {
        &self.db
    }
    pub fn unix_path(&self) -> &Path {
        &self.sock
    }
    pub fn ctl_path(&self) -> &Path {
        &self.ctl
    }
    pub fn log_path(&self) -> &Path {
        &self.logfile
    }
    pub fn pidfile(&self) -> &Path {
        &self.pidfile
    }
    /// `unix:DIR/NAME.sock`.
    pub fn unix_remote(&self) -> String {
        format!("unix:{}", self.sock.display())
    }
    /// `tcp:127.0.0.1:PORT` if TCP was requested.
    pub fn tcp_remote(&self) -> Option<String> {
        self.tcp_port.map(|p| format!("tcp:127.0.0.1:{p}"))
    }
    /// `ssl:127.0.0.1:PORT` if SSL was requested.
    pub fn ssl_remote(&self) -> Option<String> {
        self.ssl_port.map(|p| format!("ssl:127.0.0.1:{p}"))
    }
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp_port
    }
    /// The pid, while running.
    pub fn pid(&self) -> Option<i32> {
        self.pid.filter(|p| process::is_running(*p))
    }
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Stops gracefully (SIGTERM, then SIGKILL after a bounded wait).
    pub fn stop(&mut self) -> Result<(), Error> {
        match self.pid.take() {
            Some(pid) => process::stop_pid(pid, STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) -> Result<(), Error> {
        match self.pid.take() {
            Some(pid) => process::kill_pid(pid),
            None => Ok(()),
        }
    }

    /// SIGSTOPs the server found by its pid file: connections are still accepted (into the
    /// listen backlog) but nothing is answered, as with a hung server. Undo with [`Self::resume`]
    /// (stopping and dropping also continue it).
    pub fn pause(&self) -> Result<i32, Error> {
        let pid =
            process::read_pidfile(&self.pidfile)?.ok_or_else(|| Error::NotReady(format!("no pid file {}", self.pidfile.display())))?;
        process::pause_pid(pid)?;
        Ok(pid)
    }

    /// SIGCONTs the server after [`Self::pause`].
    pub fn resume(&self) -> Result<(), Error> {
        match process::read_pidfile(&self.pidfile)? {
            Some(pid) => process::resume_pid(pid),
            None => Ok(()),
        }
    }

    /// Starts again (after stop or kill) with the same database file and the same ports.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                // The old listening port can take a moment to be released.
                Err(e) if Instant::now() < deadline => {
                    debug!("restart failed, retrying: {e}");
                    self.stop_quietly();
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `ovs-appctl -t CTL ARGS...` against this server.
    pub fn appctl(&self, args: &[&str]) -> Result<String, Error> {
        let t = self.ctl.to_string_lossy().into_owned();
        let mut v = vec!["-t", &t];
        v.extend_from_slice(args);
        process::run("ovs-appctl", &v)
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        self.stop_quietly();
    }
}

/// A raft cluster of ovsdb-servers on 127.0.0.1, each also serving clients on TCP and unix.
#[derive(Debug)]
pub struct RaftCluster {
    members: Vec<OvsdbServer>,
    raft_ports: Vec<u16>,
    db_name: String,
}

impl RaftCluster {
    /// Creates an `n`-member cluster of database `db_name` (the schema's name) in `dir` and
    /// starts it; returns once every member has joined.
    pub fn start(dir: &Path, schema: &Path, db_name: &str, n: usize) -> Result<RaftCluster, Error> {
        if n == 0 {
            return Err(Error::NotReady("a cluster needs at least one member".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
        let raft_ports: Vec<u16> = (0..n).map(|_| process::free_tcp_port()).collect::<Result<_, _>>()?;
        let addr = |i: usize| format!("tcp:127.0.0.1:{}", raft_ports[i]);
        let mut members = Vec::new();
        for i in 0..n {
            let db = dir.join(format!("m{i}.db"));
            if i == 0 {
                process::run("ovsdb-tool", &["create-cluster", &db.to_string_lossy(), &schema.to_string_lossy(), &addr(0)])?;
            } else {
                process::run("ovsdb-tool", &["join-cluster", &db.to_string_lossy(), db_name, &addr(i), &addr(0)])?;
            }
            let mut cfg = OvsdbServerConfig::new(&format!("m{i}"), dir, schema).tcp(true);
            cfg.db_file = Some(db);
            members.push(OvsdbServer::start(cfg)?);
        }
        let c = RaftCluster { members, raft_ports, db_name: db_name.to_string() };
        c.wait_ready(Duration::from_secs(30))?;
        Ok(c)
    }

    /// Waits until every running member is a cluster member and one is the leader.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses: Vec<String> =
                self.members.iter().filter(|m| m.is_running()).map(|m| self.status_of(m).unwrap_or_default()).collect();
            let all_joined = statuses.iter().all(|s| s.contains("Status: cluster member"));
            let has_leader = statuses.iter().any(|s| s.contains("Role: leader"));
            if all_joined && has_leader {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady(format!("raft cluster not ready after {timeout:?}: {statuses:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn status_of(&self, m: &OvsdbServer) -> Result<String, Error> {
        m.appctl(&["cluster/status", &self.db_name])
    }

    /// `cluster/status` text of member `i`.
    pub fn status(&self, i: usize) -> Result<String, Error> {
        self.status_of(&self.members[i])
    }

    /// Index of the current leader, if a running member says it is.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| self.members[i].is_running() && self.status(i).is_ok_and(|s| s.contains("Role: leader")))
    }

    /// Client remotes: `tcp:127.0.0.1:A,tcp:127.0.0.1:B,...`.
    pub fn remotes(&self) -> String {
        self.members.iter().filter_map(|m| m.tcp_remote()).collect::<Vec<_>>().join(",")
    }
    /// Unix remotes of all members, comma separated.
    pub fn unix_remotes(&self) -> String {
        self.members.iter().map(|m| m.unix_remote()).collect::<Vec<_>>().join(",")
    }
    pub fn raft_ports(&self) -> &[u16] {
        &self.raft_ports
    }
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    pub fn member(&self, i: usize) -> &OvsdbServer {
        &self.members[i]
    }
    pub fn member_mut(&mut self, i: usize) -> &mut OvsdbServer {
        &mut self.members[i]
    }
    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) -> Result<(), Error> {
        self.members[i].kill()
    }
    /// Restarts member `i` with its database file and ports.
    pub fn restart(&mut self, i: usize) -> Result<(), Error> {
        self.members[i].restart()
    }
}

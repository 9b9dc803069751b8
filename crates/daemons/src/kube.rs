//! A real Kubernetes API server for tests: etcd + kube-apiserver on 127.0.0.1 free ports, under one directory.
//!
//! There is no controller-manager, scheduler or kubelet: pods stay Pending, there is no `default` service
//! account (hence `--disable-admission-plugins=ServiceAccount`), namespace deletion never finishes.
//!
//! Owns: the test PKI (CA, serving cert, service-account key, client certs via `openssl`), etcd's data
//! directory, the two processes (kept as [`Child`]ren; pid files `etcd.pid`, `kube-apiserver.pid` in the
//! directory), readiness waits (`/readyz`, then the `default` and `kube-system` namespaces the apiserver
//! creates asynchronously), kubeconfig files.
//! Must not touch: anything outside its directory; processes it did not start.
//!
//! The kube-apiserver binary comes from [`find_apiserver_bin`] (built by `scripts/kube-build.sh` from
//! Debian's `kubernetes` source package); [`find_kube_bins`] finds or builds the others a real cluster
//! needs (see [`crate::cluster`]).

mod kubeconfig;
mod pki;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use pki::{CertPair, Pki, ADMIN_USER};

/// Errors of the kube-apiserver harness.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid { field: &'static str, value: String, reason: String },
    #[error("{what} exited during startup ({status}); last lines of {log}:\n{tail}")]
    Exited { what: &'static str, status: String, log: String, tail: String },
    #[error("timed out after {secs} s waiting for {what}; last lines of {log}:\n{tail}")]
    Timeout { what: String, secs: u64, log: String, tail: String },
    #[error("kube-apiserver binary not found: {0}")]
    NoBinary(String),
}

impl KubeError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        KubeError::Io { what: what.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, KubeError>;

/// Where and with what to run the API server.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// State directory (created if missing): PKI, etcd data, logs, pid files, kubeconfigs.
    pub dir: PathBuf,
    /// The kube-apiserver binary (see [`find_apiserver_bin`]).
    pub apiserver_bin: PathBuf,
    /// For a cluster with nodes ([`crate::cluster`]): Node + RBAC authorization, the NodeRestriction and
    /// ServiceAccount admission plugins, a client certificate for calls to kubelets, webhooks and
    /// aggregated APIs called at their endpoints (there is no kube-proxy). Else RBAC only, no
    /// ServiceAccount admission (there is no controller-manager to make service accounts).
    pub with_nodes: bool,
}

impl KubeConfig {
    /// `dir` with the binary from [`find_apiserver_bin`].
    pub fn with_default_bin(dir: impl Into<PathBuf>) -> Result<Self> {
        Ok(KubeConfig { dir: dir.into(), apiserver_bin: find_apiserver_bin()?, with_nodes: false })
    }
}

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const ETCD_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One process started by the harness.
pub(crate) struct Managed {
    name: &'static str,
    child: Child,
    pid_file: PathBuf,
    log: PathBuf,
}

impl Managed {
    pub(crate) fn spawn(name: &'static str, dir: &Path, mut cmd: Command) -> Result<Managed> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).map_err(|e| KubeError::io(format!("create {}", log.display()), e))?;
        let err = out.try_clone().map_err(|e| KubeError::io(format!("dup {}", log.display()), e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        tracing::debug!(?cmd, "starting {name}");
        let child = cmd.spawn().map_err(|e| KubeError::io(format!("start {name} ({:?})", cmd.get_program()), e))?;
        let pid_file = dir.join(format!("{name}.pid"));
        let m = Managed { name, child, pid_file, log };
        std::fs::write(&m.pid_file, format!("{}\n", m.child.id()))
            .map_err(|e| KubeError::io(format!("write {}", m.pid_file.display()), e))?;
        tracing::info!(pid = m.child.id(), "{name} started");
        Ok(m)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Err if the process has already exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(KubeError::Exited {
                what: self.name,
                status: status.to_string(),
                log: self.log.display().to_string(),
                tail: log_tail(&self.log),
            }),
            Ok(None) => Ok(()),
            Err(e) => Err(KubeError::io(format!("wait for {}", self.name), e)),
        }
    }

    pub(crate) fn timeout(&self, what: String, waited: Duration) -> KubeError {
        KubeError::Timeout { what, secs: waited.as_secs(), log: self.log.display().to_string(), tail: log_tail(&self.log) }
    }

    /// SIGTERM, wait up to `STOP_GRACE`, then SIGKILL; reaps the child and removes the pid file.
    pub(crate) fn stop(&mut self) -> Result<ExitStatus> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let pid = self.child.id();
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s,
            _ => {
                let nix_pid = Pid::from_raw(pid as i32);
                if let Err(e) = kill(nix_pid, Signal::SIGTERM) {
                    tracing::warn!(pid, "SIGTERM {}: {e}", self.name);
                }
                let deadline = Instant::now() + STOP_GRACE;
                loop {
                    match self.child.try_wait() {
                        Ok(Some(s)) => break s,
                        Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                        Ok(None) => {
                            tracing::warn!(pid, "{} ignored SIGTERM for {:?}; SIGKILL", self.name, STOP_GRACE);
                            let _ = self.child.kill();
                            break self.child.wait().map_err(|e| KubeError::io(format!("wait for {}", self.name), e))?;
                        }
                        Err(e) => return Err(KubeError::io(format!("wait for {}", self.name), e)),
                    }
                }
            }
        };
        let _ = std::fs::remove_file(&self.pid_file);
        tracing::info!(pid, %status, "{} stopped", self.name);
        Ok(status)
    }
}

/// A running etcd + kube-apiserver pair. Stopped by [`KubeApiServer::stop`] or on drop.
pub struct KubeApiServer {
    dir: PathBuf,
    port: u16,
    etcd_url: String,
    pki: Pki,
    ca_pem: Vec<u8>,
    etcd: Option<Managed>,
    apiserver: Option<Managed>,
}

impl std::fmt::Debug for KubeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApiServer")
            .field("dir", &self.dir)
            .field("server_url", &self.server_url())
            .field("etcd_url", &self.etcd_url)
            .field("pids", &self.pids())
            .finish()
    }
}

impl KubeApiServer {
    /// Makes the PKI, starts etcd and kube-apiserver on free loopback ports, waits for `/readyz` and the
    /// `default` and `kube-system` namespaces, and writes `dir/kubeconfig` for the admin (group
    /// `system:masters`). On error, whatever was started is stopped.
    pub fn start(config: KubeConfig) -> Result<KubeApiServer> {
        let t0 = Instant::now();
        let dir = config.dir;
        std::fs::create_dir_all(&dir).map_err(|e| KubeError::io(format!("create {}", dir.display()), e))?;
        let dir = dir.canonicalize().map_err(|e| KubeError::io(format!("canonicalize {}", dir.display()), e))?;
        if !config.apiserver_bin.is_file() {
            return Err(KubeError::NoBinary(format!("{} is not a file", config.apiserver_bin.display())));
        }
        let pki = Pki::create(&dir.join("pki"))?;
        let ca_pem = kubeconfig::read(&pki.ca.cert)?;
        let [port, etcd_client, etcd_peer] = free_ports()?;
        let mut kas =
            KubeApiServer { etcd_url: format!("http://127.0.0.1:{etcd_client}"), dir, port, pki, ca_pem, etcd: None, apiserver: None };
        // From here on, an early return drops `kas`, which stops what was started.
        kas.start_etcd(etcd_client, etcd_peer)?;
        kas.start_apiserver(&config.apiserver_bin, config.with_nodes)?;
        kubeconfig::write(&kas.kubeconfig_path(), &kas.server_url(), &kas.ca_pem, ADMIN_USER, &kas.pki.admin)?;
        tracing::info!(server = %kas.server_url(), elapsed = ?t0.elapsed(), "kube-apiserver ready");
        Ok(kas)
    }

    fn start_etcd(&mut self, client: u16, peer: u16) -> Result<()> {
        let data = self.dir.join("etcd-data");
        let mut cmd = Command::new(std::env::var_os("ETCD_BIN").unwrap_or_else(|| "etcd".into()));
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        cmd.arg("--name=kubetron")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=kubetron={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        let etcd = self.etcd.insert(Managed::spawn("etcd", &self.dir, cmd)?);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, client));
        let t0 = Instant::now();
        loop {
            etcd.check_running()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if t0.elapsed() > ETCD_TIMEOUT {
                return Err(etcd.timeout(format!("etcd to listen on {addr}"), ETCD_TIMEOUT));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_apiserver(&mut self, bin: &Path, with_nodes: bool) -> Result<()> {
        let kubelet_client = if with_nodes {
            Some(self.pki.client_cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", &["system:masters"])?)
        } else {
            None
        };
        let p = &self.pki;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--etcd-servers={}", self.etcd_url))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.port))
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .arg(format!("--tls-cert-file={}", p.serving.cert.display()))
            .arg(format!("--tls-private-key-file={}", p.serving.key.display()))
            .arg(format!("--client-ca-file={}", p.ca.cert.display()))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", p.sa_pub.display()))
            .arg(format!("--service-account-signing-key-file={}", p.sa_key.display()))
            .arg("--endpoint-reconciler-type=none")
            .arg("--allow-privileged=true")
            .arg("--profiling=false");
        match &kubelet_client {
            Some(kc) => {
                cmd.arg("--authorization-mode=Node,RBAC")
                    .arg("--enable-admission-plugins=NodeRestriction")
                    .arg(format!("--kubelet-client-certificate={}", kc.cert.display()))
                    .arg(format!("--kubelet-client-key={}", kc.key.display()))
                    .arg("--kubelet-preferred-address-types=InternalIP")
                    .arg("--enable-aggregator-routing=true");
            }
            None => {
                cmd.arg("--authorization-mode=RBAC").arg("--disable-admission-plugins=ServiceAccount");
            }
        }
        let url = self.server_url();
        let apiserver = self.apiserver.insert(Managed::spawn("kube-apiserver", &self.dir, cmd)?);
        let t0 = Instant::now();
        // Ready means /readyz answers ok AND the namespaces the apiserver makes itself exist: its
        // bootstrap controller creates `default`, `kube-system`, ... asynchronously, after /readyz
        // may already say ok (on a loaded machine, seconds later).
        let mut pending: Vec<&str> = std::iter::once("/readyz").chain(SYSTEM_NAMESPACES.iter().copied()).collect();
        loop {
            apiserver.check_running()?;
            while let Some(path) = pending.first() {
                match get_ok(&url, path, &self.pki) {
                    Ok(()) => {
                        pending.remove(0);
                    }
                    Err(e) => {
                        tracing::trace!("{path}: {e}");
                        break;
                    }
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if t0.elapsed() > READY_TIMEOUT {
                return Err(apiserver.timeout(format!("{url}{}", pending[0]), READY_TIMEOUT));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The state directory (canonical path).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The admin kubeconfig (`dir/kubeconfig`, user `kubetron-admin` in group `system:masters`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The CA certificate (PEM) that signed the serving and client certificates.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The test PKI's files (CA, serving cert, admin client cert, service-account key).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// `http://127.0.0.1:<port>` of the harness's etcd.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// Pids of the processes still owned (etcd, kube-apiserver), for leak checks.
    pub fn pids(&self) -> Vec<u32> {
        self.etcd.iter().chain(self.apiserver.iter()).map(|m| m.child.id()).collect()
    }

    /// Writes a kubeconfig authenticating as `user` in `groups` (client certificate, no RBAC bindings made)
    /// and returns its path (`dir/kubeconfig-<user>`, with characters other than letters, digits, `.`, `-`,
    /// `_` replaced by `_`). User and group names: letters, digits and `:._@-`.
    pub fn make_user_kubeconfig(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let stem: String = user.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
        let pair = self.pki.client_cert(&format!("user-{stem}"), user, groups)?;
        let path = self.dir.join(format!("kubeconfig-{stem}"));
        kubeconfig::write(&path, &self.server_url(), &self.ca_pem, user, &pair)?;
        Ok(path)
    }

    /// Stops kube-apiserver, then etcd (SIGTERM, then SIGKILL after 10 s), by the pids it started.
    /// Idempotent. Returns the first error but always tries to stop both.
    pub fn stop(&mut self) -> Result<()> {
        let mut first = None;
        for m in [self.apiserver.take(), self.etcd.take()].into_iter().flatten() {
            let mut m = m;
            if let Err(e) = m.stop() {
                tracing::warn!("stopping {}: {e}", m.name);
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("kube-apiserver harness teardown: {e}");
        }
    }
}

/// What must exist before the harness calls the apiserver ready: the namespaces its bootstrap
/// controller creates (asynchronously) and that tests and clients assume.
const SYSTEM_NAMESPACES: &[&str] = &["/api/v1/namespaces/default", "/api/v1/namespaces/kube-system"];

/// GET `path` with the admin client certificate (via `curl`); Ok on a 2xx answer (for `/readyz`:
/// only when it says `ok`).
fn get_ok(server: &str, path: &str, pki: &Pki) -> Result<()> {
    let url = format!("{server}{path}");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "3", "--cacert"])
        .arg(&pki.ca.cert)
        .arg("--cert")
        .arg(&pki.admin.cert)
        .arg("--key")
        .arg(&pki.admin.key)
        .arg(&url)
        .output()
        .map_err(|e| KubeError::io("run curl", e))?;
    if out.status.success() && (path != "/readyz" || out.stdout.trim_ascii() == b"ok") {
        return Ok(());
    }
    Err(KubeError::Command {
        command: format!("curl {url}"),
        status: out.status.to_string(),
        stderr: format!("{} {}", String::from_utf8_lossy(&out.stderr).trim(), String::from_utf8_lossy(&out.stdout).trim()),
    })
}

/// Three distinct free TCP ports on 127.0.0.1 (held open together while choosing them).
fn free_ports() -> Result<[u16; 3]> {
    let mut held = Vec::with_capacity(3);
    let mut ports = [0u16; 3];
    for p in ports.iter_mut() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| KubeError::io("bind 127.0.0.1:0", e))?;
        *p = l.local_addr().map_err(|e| KubeError::io("local_addr", e))?.port();
        held.push(l);
    }
    Ok(ports)
}

fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(data) => {
            let text = String::from_utf8_lossy(&data);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

/// The repository root (this crate lives in `<repo>/crates/daemons`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `${KUBETRON_CACHE:-<repo>/.cache}/kubernetes`.
fn cache_dir() -> PathBuf {
    match std::env::var_os("KUBETRON_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c).join("kubernetes"),
        _ => repo_root().join(".cache").join("kubernetes"),
    }
}

/// The kube-apiserver binary: `$KUBE_APISERVER_BIN`; else as [`find_kube_bins`] finds it.
pub fn find_apiserver_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KUBE_APISERVER_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(KubeError::NoBinary(format!("KUBE_APISERVER_BIN={} is not a file", p.display()))) };
    }
    Ok(find_kube_bins(&["kube-apiserver"])?.remove(0))
}

/// Kubernetes binaries by name (`kube-apiserver`, `kubelet`, ...), in the order asked: from one cached build
/// (`${KUBETRON_CACHE:-<repo>/.cache}/kubernetes/<version>/<name>`, the newest version holding them all);
/// else runs `scripts/kube-build.sh <names>` (download + build: ~5 min for the first on 2 cores, ~3 min each
/// more) and uses the paths it prints.
pub fn find_kube_bins(names: &[&str]) -> Result<Vec<PathBuf>> {
    if let Some(dir) = cached_dir(&cache_dir(), names) {
        return Ok(names.iter().map(|n| dir.join(n)).collect());
    }
    let script = repo_root().join("scripts").join("kube-build.sh");
    tracing::info!("{names:?} not all cached; running {} (download + build)", script.display());
    let out = Command::new("bash")
        .arg(&script)
        .args(names)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| KubeError::io(format!("run {}", script.display()), e))?;
    if !out.status.success() {
        return Err(KubeError::NoBinary(format!("{} failed ({})", script.display(), out.status)));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let paths: Vec<PathBuf> = stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(PathBuf::from).collect();
    if paths.len() != names.len() || paths.iter().any(|p| !p.is_file()) {
        return Err(KubeError::NoBinary(format!("{} printed {stdout:?}, not {} files", script.display(), names.len())));
    }
    Ok(paths)
}

/// Newest `<cache>/<version>/` that holds every one of `names`.
fn cached_dir(cache: &Path, names: &[&str]) -> Option<PathBuf> {
    let entries = std::fs::read_dir(cache).ok()?;
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|d| names.iter().all(|n| d.join(n).is_file()))
        .filter_map(|d| Some((std::fs::metadata(d.join(names[0])).ok()?.modified().ok()?, d)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports().expect("ports");
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn cached_dir_needs_every_binary() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(cached_dir(d.path(), &["kube-apiserver"]).is_none());
        std::fs::create_dir_all(d.path().join("1.0/")).expect("mkdir");
        assert!(cached_dir(d.path(), &["kube-apiserver"]).is_none());
        std::fs::write(d.path().join("1.0/kube-apiserver"), b"x").expect("write");
        assert_eq!(cached_dir(d.path(), &["kube-apiserver"]), Some(d.path().join("1.0")));
        assert!(cached_dir(d.path(), &["kube-apiserver", "kubelet"]).is_none());
    }

    #[test]
    fn start_fails_cleanly_without_binary() {
        let d = tempfile::tempdir().expect("tempdir");
        let r = KubeApiServer::start(KubeConfig { dir: d.path().join("k"), apiserver_bin: d.path().join("nope"), with_nodes: false });
        assert!(matches!(r, Err(KubeError::NoBinary(_))), "{r:?}");
    }
}

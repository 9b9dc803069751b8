//! Shared harness of the `kube_e2e_*` tests: ONE real kube-apiserver (+ etcd) per test binary, started on first
//! use and stopped at process exit (an `atexit` hook: statics are never dropped), plus kube-rs helpers (those
//! every kube test shares are `testkit::kube`'s, re-exported here).
//!
//! Gated: [`harness`] returns `None` (the test prints "skipped" and returns) unless `KUBETRON_KUBE_TESTS=1`.
//! Tests share the apiserver, so each one works in its own uniquely named namespaces ([`unique`]).
//! No kubectl: everything goes through kube-rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use daemons::kube::{find_apiserver_bin, KubeApiServer, KubeConfig};
use k8s::webhook::{KubeSource, TlsSource, WebhookConfig, WebhookServer};
use kube::Client;

pub use testkit::init_tracing;
pub use testkit::kube::*;

pub struct Harness {
    kas: Mutex<Option<KubeApiServer>>,
    /// Kubeconfigs made so far, by user (made once: tests run in parallel and share them).
    users: Mutex<std::collections::HashMap<String, PathBuf>>,
    root: PathBuf,
    pub admin_kubeconfig: PathBuf,
    pub server_url: String,
    pub started_in: Duration,
}

static HARNESS: OnceLock<Result<Harness, String>> = OnceLock::new();

extern "C" fn stop_at_exit() {
    if let Some(Ok(h)) = HARNESS.get() {
        let taken = h.kas.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut kas) = taken {
            let t = Instant::now();
            if let Err(e) = kas.stop() {
                eprintln!("kube e2e: stopping the apiserver: {e}");
            }
            eprintln!("kube e2e: apiserver stopped in {:?}", t.elapsed());
        }
        let _ = std::fs::remove_dir_all(&h.root);
    }
}

/// Backstop for a test binary that dies without running `atexit` (SIGKILL by a CI timeout): a detached `sh`
/// that waits for this process to go, then SIGTERMs the harness's etcd and kube-apiserver by pid (only if the pid
/// still runs one of those programs), and removes the state directory. After a normal exit they are already gone.
fn spawn_watchdog(pids: &[u32], root: &Path) {
    use std::os::unix::process::CommandExt;
    let list = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         for p in {list}; do grep -qa -e kube-apiserver -e etcd /proc/$p/cmdline 2>/dev/null && kill $p; done; \
         sleep 2; rm -rf '{root}'; exit 0",
        me = std::process::id(),
        root = root.display()
    );
    let spawned = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        eprintln!("kube e2e: no watchdog ({e}); a killed test binary would leave etcd/kube-apiserver running");
    }
}

/// The binary's shared apiserver; `None` (after printing "skipped") when the kube tests are not enabled.
pub fn harness(test: &str) -> Option<&'static Harness> {
    if !enabled(test) {
        return None;
    }
    init_tracing();
    let h = HARNESS.get_or_init(|| {
        let t0 = Instant::now();
        let root = tempfile::Builder::new().prefix("kubetron-kube-e2e-").tempdir().map_err(|e| format!("tempdir: {e}"))?.keep();
        let started = find_apiserver_bin()
            .and_then(|bin| KubeApiServer::start(KubeConfig { dir: root.join("kube"), apiserver_bin: bin, with_nodes: false }));
        let kas = match started {
            Ok(k) => k,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&root);
                return Err(format!("starting kube-apiserver: {e}"));
            }
        };
        // SAFETY: registering a plain extern "C" fn without arguments.
        let rc = unsafe { libc::atexit(stop_at_exit) };
        let h = Harness {
            admin_kubeconfig: kas.kubeconfig_path(),
            server_url: kas.server_url(),
            kas: Mutex::new(Some(kas)),
            users: Mutex::new(Default::default()),
            root,
            started_in: t0.elapsed(),
        };
        if rc != 0 {
            // Without the hook the processes would outlive the test binary: refuse to run.
            let mut k = h.kas.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(k) = k.as_mut() {
                let _ = k.stop();
            }
            return Err("atexit registration failed".into());
        }
        spawn_watchdog(&h.pids(), &h.root);
        eprintln!("kube e2e: apiserver {} ready in {:?}", h.server_url, h.started_in);
        Ok(h)
    });
    match h {
        Ok(h) => Some(h),
        Err(e) => panic!("{e}"),
    }
}

impl Harness {
    /// A kubeconfig for `user` in `groups` (client certificate; bindings are up to the test).
    /// Made once per user: the groups of the first call win.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = users.get(user) {
            return p.clone();
        }
        let g = self.kas.lock().unwrap_or_else(|p| p.into_inner());
        let path = g.as_ref().expect("apiserver running").make_user_kubeconfig(user, groups).expect("user kubeconfig");
        users.insert(user.to_string(), path.clone());
        path
    }

    /// Pids of etcd and kube-apiserver.
    pub fn pids(&self) -> Vec<u32> {
        self.kas.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|k| k.pids()).unwrap_or_default()
    }

    pub async fn admin(&self) -> Client {
        client_from(&self.admin_kubeconfig).await
    }

    /// The admin client, after deploy/'s CRD (established) and RBAC (with the `kubetron` namespace) are
    /// applied (idempotent: tests share the apiserver).
    pub async fn deployed_admin(&self) -> Client {
        let admin = self.admin().await;
        install_crd(&admin).await;
        apply_rbac(&admin).await;
        admin
    }

    pub async fn user(&self, user: &str, groups: &[&str]) -> Client {
        client_from(&self.user_kubeconfig(user, groups)).await
    }

    /// The admission webhook server on 127.0.0.1 (a free port, a generated CA for `dns_names`), running as
    /// the deployed webhook identity on a runtime of its own: dropping (or shutting down) that runtime kills
    /// it and every keep-alive connection the apiserver holds to it. (runtime, port, CA PEM).
    pub fn start_webhook(&self, dns_names: &[&str]) -> (tokio::runtime::Runtime, u16, String) {
        let rt = runtime();
        let (server, port, ca) = rt.block_on(async {
            let client = self.user(WEBHOOK_USER, SA_GROUPS).await;
            let config = WebhookConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                tls: TlsSource::Generate { dns_names: dns_names.iter().map(|n| n.to_string()).collect(), ca_out: None },
            };
            let server = WebhookServer::bind(&config, KubeSource::new(client, KUBETRON_NS)).await.expect("bind webhook");
            let port = server.local_addr().expect("addr").port();
            let ca = server.ca_pem().expect("generated CA").to_string();
            (server, port, ca)
        });
        rt.spawn(server.run());
        (rt, port, ca)
    }
}

/// A name unique in this process and across runs: `<prefix>-<pid>-<n>` (DNS label safe).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The message of an API error (what a client shows its user).
pub fn api_message(e: &kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message.clone()),
        other => (0, other.to_string()),
    }
}

/// Asserts `r` is an API error with HTTP `code`; returns its message.
pub fn expect_code<T: std::fmt::Debug>(r: Result<T, kube::Error>, code: u16, what: &str) -> String {
    match r {
        Err(kube::Error::Api(s)) if s.code == code => s.message,
        other => panic!("{what}: expected HTTP {code}, got {other:?}"),
    }
}

//! Shared harness of the `kube_e2e_*` tests: ONE real kube-apiserver (+ etcd) per test binary, started on first
//! use and stopped at process exit (an `atexit` hook: statics are never dropped), plus kube-rs helpers.
//!
//! Gated: [`harness`] returns `None` (the test prints "skipped" and returns) unless `KUBETRON_KUBE_TESTS=1`.
//! Tests share the apiserver, so each one works in its own uniquely named namespaces ([`unique`]).
//! No kubectl: everything goes through kube-rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use daemons::kube::{find_apiserver_bin, KubeApiServer, KubeConfig};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::Client;
use serde_json::Value;

/// The kubetron namespace of deploy/ (service accounts, the leader election Role).
pub const KUBETRON_NS: &str = "kubetron";
pub const CONTROLLER_USER: &str = "system:serviceaccount:kubetron:kubetron-controller";
pub const WEBHOOK_USER: &str = "system:serviceaccount:kubetron:kubetron-webhook";
pub const NODE_USER: &str = "system:serviceaccount:kubetron:kubetron-node";
/// Groups a service account's token would carry.
pub const SA_GROUPS: &[&str] = &["system:serviceaccounts", "system:serviceaccounts:kubetron"];

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

pub fn enabled() -> bool {
    std::env::var("KUBETRON_KUBE_TESTS").as_deref() == Ok("1")
}

/// The binary's shared apiserver; `None` (after printing "skipped") when the kube tests are not enabled.
pub fn harness(test: &str) -> Option<&'static Harness> {
    if !enabled() {
        eprintln!("skipped {test}: set KUBETRON_KUBE_TESTS=1 to run the kube-apiserver tests");
        return None;
    }
    init_tracing();
    let h = HARNESS.get_or_init(|| {
        let t0 = Instant::now();
        let root = tempfile::Builder::new().prefix("kubetron-kube-e2e-").tempdir().map_err(|e| format!("tempdir: {e}"))?.keep();
        let started = find_apiserver_bin().and_then(|bin| KubeApiServer::start(KubeConfig { dir: root.join("kube"), apiserver_bin: bin }));
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

    pub async fn user(&self, user: &str, groups: &[&str]) -> Client {
        client_from(&self.user_kubeconfig(user, groups)).await
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A kube client from a kubeconfig file. Clients belong to the tokio runtime they are made in.
pub async fn client_from(path: &Path) -> Client {
    k8s::client::client_from_kubeconfig(path).await.expect("kube client")
}

/// A name unique in this process and across runs: `<prefix>-<pid>-<n>` (DNS label safe).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A tokio runtime for one test (tests are plain `#[test]`s; the harness is process-wide).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Creates a namespace with `labels`; Ok when it already exists.
pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>()}
    }))
    .expect("namespace");
    create_or_exists(&Api::<Namespace>::all(client.clone()), &ns).await;
}

/// Creates `obj`; an AlreadyExists (409) answer is fine.
pub async fn create_or_exists<K>(api: &Api<K>, obj: &K)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    k8s::client::create_or_exists(api, obj).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Polls `f` every 100 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    k8s::client::wait_for(what, timeout, Duration::from_millis(100), f).await.unwrap_or_else(|e| panic!("{e}"))
}

pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The YAML documents of `deploy/<file>`, as JSON values.
pub fn deploy_docs(file: &str) -> Vec<Value> {
    let path = deploy_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    k8s::client::yaml_documents(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Installs deploy/crd.yaml (idempotent) and waits until it is Established and the NAD API is served.
pub async fn install_crd(client: &Client) -> CustomResourceDefinition {
    let text = std::fs::read_to_string(deploy_dir().join("crd.yaml")).expect("deploy/crd.yaml");
    assert_eq!(deploy_docs("crd.yaml").len(), 1, "crd.yaml holds one CRD");
    k8s::client::install_nad_crd(client, &text, Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Applies every object of deploy/rbac-*.yaml (create; existing objects are left as they are) and the
/// `kubetron` namespace they live in.
pub async fn apply_rbac(client: &Client) {
    create_namespace(client, KUBETRON_NS, &[]).await;
    k8s::client::create_rbac_objects(client, &rbac_docs(), KUBETRON_NS).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Every document of deploy/rbac-*.yaml.
pub fn rbac_docs() -> Vec<Value> {
    let mut files: Vec<String> = std::fs::read_dir(deploy_dir())
        .expect("deploy dir")
        .map(|e| e.expect("dir entry").file_name().into_string().expect("utf-8 name"))
        .filter(|n| n.starts_with("rbac-") && n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "rbac manifests: {files:?}");
    files.iter().flat_map(|f| deploy_docs(f)).collect()
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

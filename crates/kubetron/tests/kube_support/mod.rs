//! Helpers of the tests that run the real `kubetron` binaries against a real kube-apiserver: the gate
//! (`KUBETRON_KUBE_TESTS=1`), kube-rs clients from kubeconfig files, deploy/ manifests, child processes stopped
//! by pid on drop, waits.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::Client;
use serde_json::Value;

pub const KUBETRON_NS: &str = "kubetron";
pub const CONTROLLER_USER: &str = "system:serviceaccount:kubetron:kubetron-controller";
pub const WEBHOOK_USER: &str = "system:serviceaccount:kubetron:kubetron-webhook";
pub const SA_GROUPS: &[&str] = &["system:serviceaccounts", "system:serviceaccounts:kubetron"];

/// Whether the kube tests run; prints "skipped <test>" when they do not.
pub fn enabled(test: &str) -> bool {
    let on = std::env::var("KUBETRON_KUBE_TESTS").as_deref() == Ok("1");
    if !on {
        eprintln!("skipped {test}: set KUBETRON_KUBE_TESTS=1 to run the kube-apiserver tests");
    }
    on
}

pub fn kubetron_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kubetron")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// A kube client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Client {
    k8s::client::client_from_kubeconfig(path).await.expect("kube client")
}

/// A free TCP port on 127.0.0.1 (released before returning; used right away).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind").local_addr().expect("addr").port()
}

/// Polls `f` every 100 ms until it returns `Some`; panics naming `what` after `timeout`.
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

/// The YAML documents of `deploy/<file>` as JSON values.
pub fn deploy_docs(file: &str) -> Vec<Value> {
    let path = deploy_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    k8s::client::yaml_documents(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Creates `obj`; AlreadyExists is fine.
pub async fn create_or_exists<K>(api: &Api<K>, obj: &K)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    k8s::client::create_or_exists(api, obj).await.unwrap_or_else(|e| panic!("{e}"));
}

pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let labels: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}})).expect("namespace");
    create_or_exists(&Api::<Namespace>::all(client.clone()), &ns).await;
}

/// deploy/crd.yaml, waited until the NAD API is served.
pub async fn install_crd(client: &Client) {
    let text = std::fs::read_to_string(deploy_dir().join("crd.yaml")).expect("deploy/crd.yaml");
    k8s::client::install_nad_crd(client, &text, Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{e}"));
}

/// The `kubetron` namespace and every object of deploy/rbac-*.yaml.
pub async fn apply_rbac(client: &Client) {
    create_namespace(client, KUBETRON_NS, &[("kubetron.io/webhook", "ignore")]).await;
    let mut files: Vec<String> = std::fs::read_dir(deploy_dir())
        .expect("deploy dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.starts_with("rbac-") && n.ends_with(".yaml"))
        .collect();
    files.sort();
    let docs: Vec<Value> = files.iter().flat_map(|f| deploy_docs(f)).collect();
    k8s::client::create_rbac_objects(client, &docs, KUBETRON_NS).await.unwrap_or_else(|e| panic!("{e}"));
}

/// A child process of the test, with its output in a log file; killed by its pid on drop. When the test
/// is failing, the log's tail is printed.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, log_dir: &Path, mut cmd: Command) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(out.try_clone().expect("dup")).stderr(out);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc { name: name.into(), child, log }
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Panics (with the log) if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!("{} exited ({st}):\n{}", self.name, self.log_text());
        }
    }
    /// SIGKILL by pid and reap. Idempotent.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- last lines of {} ({}):\n{}", self.name, self.log.display(), lines[lines.len().saturating_sub(30)..].join("\n"));
        }
    }
}

/// GET `path` over plain HTTP/1.0; the body.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string()).or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// Whether a process with this pid still exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

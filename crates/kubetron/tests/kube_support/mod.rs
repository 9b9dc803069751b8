//! Helpers of the tests that run the real `kubetron` binaries against a real kube-apiserver: what every kube
//! test shares (the gate, clients, waits, deploy/ manifests: `testkit::kube`), and child processes stopped by
//! pid on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

// Not every test binary that includes this module uses the kit's kube helpers.
#[allow(unused_imports)]
pub use testkit::kube::*;

pub fn kubetron_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kubetron")
}

/// A free TCP port on 127.0.0.1 (released before returning; used right away).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind").local_addr().expect("addr").port()
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

/// The `kubetron-cni` shim built next to `kubetron`.
pub fn shim_bin() -> PathBuf {
    let p = Path::new(kubetron_bin()).with_file_name("kubetron-cni");
    assert!(p.exists(), "{} is missing: build it with `cargo build -p cni --bin kubetron-cni`", p.display());
    p
}

/// A pod object (namespace set by the API it is created through) scheduled to `node`, asking for
/// `networks`.
pub fn pod_on(name: &str, node: &str, networks: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "example.invalid/c:1"}]}
    }))
    .expect("pod json")
}

/// `CNI_ARGS` as a Kubernetes runtime passes them.
pub fn cni_args(ns: &str, name: &str, uid: &str, container: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_UID={uid};K8S_POD_INFRA_CONTAINER_ID={container}")
}

/// `kubetron controller` on Northbound `nb` with `kubeconfig`, GC every 2 s, identity `identity`,
/// plus `extra` arguments; its log in `dir`.
pub fn spawn_controller(dir: &Path, nb: &str, kubeconfig: &Path, identity: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--nb", nb];
    args.extend_from_slice(extra);
    spawn_controller_with(dir, kubeconfig, identity, &args)
}

/// `kubetron controller` with `kubeconfig`, GC every 2 s, identity `identity`, and `args` (the
/// backend's); its log in `dir`.
pub fn spawn_controller_with(dir: &Path, kubeconfig: &Path, identity: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(kubetron_bin());
    cmd.args(["controller", "--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--gc-interval-secs", "2", "--identity", identity])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBETRON_OVN_NB")
        .env_remove("KUBETRON_VM_MIGRATION")
        .env("KUBETRON_LOG", "info");
    Proc::spawn("controller", dir, cmd)
}

/// One node of a cluster-mode test: its chassis index, node agent process and CNI socket.
pub struct Node {
    pub name: String,
    pub index: usize,
    pub socket: PathBuf,
    pub agent: Proc,
}

/// `kubetron node` for `chassis` (the test world's chassis `index`; node name = chassis name) with `kubeconfig`, run from the root
/// netns (where the apiserver listens), its host veth ends in the chassis' netns; socket and
/// device-plugin dirs and log under `dir`.
pub fn spawn_agent(dir: &Path, index: usize, chassis: &daemons::Chassis, kubeconfig: &Path) -> Node {
    spawn_agent_with(dir, index, chassis, kubeconfig, &[])
}

/// [`spawn_agent`] with `extra` arguments.
pub fn spawn_agent_with(dir: &Path, index: usize, chassis: &daemons::Chassis, kubeconfig: &Path, extra: &[&str]) -> Node {
    let node = chassis.name().to_string();
    let socket_dir = dir.join(format!("cni-{node}"));
    let mut cmd = Command::new(kubetron_bin());
    cmd.args(["node", "--node-name", &node, "--ovs-remote", &chassis.db_remote()])
        .arg("--cni-socket-dir")
        .arg(&socket_dir)
        .arg("--device-plugin-dir")
        .arg(dir.join(format!("dp-{node}")))
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--host-netns", &format!("/run/netns/{}", chassis.netns())])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBETRON_OVN_NB")
        .env("KUBETRON_LOG", "info,node=debug");
    Node { agent: Proc::spawn(&format!("agent-{node}"), dir, cmd), socket: socket_dir.join("kubetron.sock"), name: node, index }
}

/// The Kubernetes side of a cluster-mode test: a real kube-apiserver (state under `dir/kube`),
/// deploy/'s CRDs and RBAC applied, namespace `ns`, kubeconfigs for the controller's and the node
/// agents' identities, and an admin client. Returns once the node identity may list pods (its
/// RBAC binding in effect).
pub struct KubeSide {
    pub kas: daemons::kube::KubeApiServer,
    pub controller_kc: PathBuf,
    pub node_kc: PathBuf,
    pub admin: kube::Client,
}

impl KubeSide {
    pub fn start(rt: &tokio::runtime::Runtime, dir: &Path, ns: &str) -> KubeSide {
        let kas =
            daemons::kube::KubeApiServer::start(daemons::kube::KubeConfig::with_default_bin(dir.join("kube")).expect("kube-apiserver"))
                .expect("start kube-apiserver");
        let controller_kc = kas.make_user_kubeconfig(CONTROLLER_USER, SA_GROUPS).expect("controller kubeconfig");
        let node_kc = kas.make_user_kubeconfig(NODE_USER, SA_GROUPS).expect("node kubeconfig");
        let admin = rt.block_on(async {
            let admin = client_from(&kas.kubeconfig_path()).await;
            install_crd(&admin).await;
            apply_rbac(&admin).await;
            create_namespace(&admin, ns, &[]).await;
            let pods = kube::Api::<k8s_openapi::api::core::v1::Pod>::all(client_from(&node_kc).await);
            wait_for("the node identity to be authorized", Duration::from_secs(20), || async {
                pods.list(&kube::api::ListParams::default().limit(1)).await.ok().map(|_| ())
            })
            .await;
            admin
        });
        KubeSide { kas, controller_kc, node_kc, admin }
    }
}

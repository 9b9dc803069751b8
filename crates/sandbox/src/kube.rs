//! The Kubernetes part of `kubetron-sandbox up --with-kube`: etcd + kube-apiserver (state under
//! `<dir>/kube`, pid files `etcd.pid` and `kube-apiserver.pid` there), the NAD CRD, NADs `red` and
//! `blue` in namespace `default`, `kubetron controller` as a detached child (`<dir>/controller.pid`,
//! `<dir>/controller.log`), one node agent (`kubetron node`) per chassis (`<dir>/agent-<node>.pid`,
//! its CNI socket under `<dir>/cni-<node>`), and the pods as Kubernetes objects the controller hands
//! addresses to (cluster mode: the `kubetron-cni` shim asks the chassis' agent to plug them).
//!
//! Owns: what it starts, by pid file. Must not touch: any other apiserver or process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use daemons::kube::{find_apiserver_bin, KubeApiServer, KubeConfig};
use k8s::nad::NetworkAttachmentDefinition;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use kube::Client;
use model::status::{INTERFACES_ANNOTATION, NETWORK_STATUS_ANNOTATION};
use serde_json::{json, Value};

use crate::networks::NETWORKS;
use crate::Error;

const CRD_YAML: &str = include_str!("../../../deploy/crd.yaml");
const IPAMCLAIM_CRD_YAML: &str = include_str!("../../../deploy/crd-ipamclaims.yaml");
const MNP_CRD_YAML: &str = include_str!("../../../deploy/crd-multinetworkpolicies.yaml");
/// The namespace the sandbox's pods and NADs live in.
pub const NAMESPACE: &str = "default";
/// The networks annotation the sandbox's pods carry (net1 = red, net2 = blue).
pub const NETWORKS_ANNOTATION: &str = "red, blue";
pub const CONTROLLER_PID: &str = "controller.pid";
pub const CONTROLLER_LOG: &str = "controller.log";

fn step_err(what: &str) -> impl Fn(kube::Error) -> Error + '_ {
    move |e| Error::Step(format!("{what}: {e}"))
}

fn step(e: k8s::client::ClientError) -> Error {
    Error::Step(e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Step(e.to_string()))
}

/// A kube client from a kubeconfig file (belongs to the runtime it is made in).
pub async fn client(kubeconfig: &Path) -> Result<Client, Error> {
    k8s::client::client_from_kubeconfig(kubeconfig).await.map_err(step)
}

/// Starts etcd + kube-apiserver under `<dir>/kube` (building kube-apiserver first when it is not cached).
pub fn start_apiserver(dir: &Path) -> Result<KubeApiServer, Error> {
    let bin = find_apiserver_bin().map_err(|e| Error::Step(format!("kube-apiserver: {e}")))?;
    KubeApiServer::start(KubeConfig { dir: dir.join("kube"), apiserver_bin: bin, with_nodes: false })
        .map_err(|e| Error::Step(e.to_string()))
}

async fn create_or_exists<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    k8s::client::create_or_exists(api, obj).await.map(drop).map_err(step)
}

async fn poll<T, F, Fut>(what: &str, timeout: Duration, f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    k8s::client::wait_for(what, timeout, Duration::from_millis(200), f).await.map_err(step)
}

/// The NAD CRD (deploy/crd.yaml), the IPAMClaim CRD (deploy/crd-ipamclaims.yaml), the MultiNetworkPolicy CRD
/// (deploy/crd-multinetworkpolicies.yaml) and the namespaces the sandbox uses (`kubetron` holds the
/// controller's Lease). The NADs themselves come from the controller's NAD sync (the sandbox's
/// switches are marked `kubetron.io/namespaces=default`), see [`wait_for_synced_nads`].
pub fn install(kubeconfig: &Path) -> Result<(), Error> {
    runtime()?.block_on(async {
        let c = client(kubeconfig).await?;
        k8s::client::install_nad_crd(&c, CRD_YAML, Duration::from_secs(30)).await.map_err(step)?;
        k8s::client::install_ipamclaim_crd(&c, IPAMCLAIM_CRD_YAML, Duration::from_secs(30)).await.map_err(step)?;
        k8s::client::install_mnp_crd(&c, MNP_CRD_YAML, Duration::from_secs(30)).await.map_err(step)?;
        let namespaces: Api<Namespace> = Api::all(c);
        for ns in [NAMESPACE, "kubetron"] {
            let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).map_err(|e| Error::Step(e.to_string()))?;
            create_or_exists(&namespaces, &obj).await?;
        }
        Ok(())
    })
}

/// Waits until the controller's NAD sync has made a NAD for every sandbox network in `default`;
/// returns each network's CNI config as the NAD holds it (what Multus would hand the plugin).
pub fn wait_for_synced_nads(kubeconfig: &Path) -> Result<BTreeMap<String, Value>, Error> {
    runtime()?.block_on(async {
        let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client(kubeconfig).await?, NAMESPACE);
        let mut out = BTreeMap::new();
        for net in &NETWORKS {
            let nad = poll(&format!("NAD default/{} from the controller's NAD sync", net.name), Duration::from_secs(30), || async {
                nads.get_opt(net.name).await.ok().flatten()
            })
            .await?;
            let config: Value = serde_json::from_str(&nad.spec.config)
                .map_err(|e| Error::Step(format!("NAD default/{}: its config is not JSON: {e}", net.name)))?;
            out.insert(net.name.to_string(), config);
        }
        Ok(out)
    })
}

/// The config the sandbox passes the `kubetron-cni` shim for a network: the NAD's config as the
/// sync wrote it (cluster mode: no `nb`, no `mode`; a shim given anything else refuses it, and the
/// sandbox with it), with the chassis' agent socket (the sandbox runs one agent per chassis, each on
/// its own socket).
pub fn cluster_config(nad_config: &Value, agent_socket: &Path) -> Value {
    let mut c = nad_config.clone();
    c["agent_socket"] = json!(agent_socket.display().to_string());
    c
}

/// A daemon the sandbox starts itself (the controller, the node agents): detached, in a process group
/// of its own, its output in `<dir>/<name>.log`, its pid in `<dir>/<name>.pid` (which `down` and
/// `status` read). Stopped on drop unless [`Daemon::keep`].
pub struct Daemon {
    name: String,
    pid: i32,
    pid_file: PathBuf,
    log: PathBuf,
    kept: bool,
}

impl Daemon {
    fn spawn(name: &str, dir: &Path, mut cmd: Command) -> Result<Daemon, Error> {
        use std::os::unix::process::CommandExt;
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| Error::Io { path: log_path.clone(), source: e })?;
        let log2 = log.try_clone().map_err(|e| Error::Io { path: log_path.clone(), source: e })?;
        let child = cmd
            .env_remove("CNI_COMMAND")
            .env_remove("KUBETRON_OVN_NB")
            .env("KUBETRON_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Step(format!("starting {name} ({}): {e}", cmd.get_program().to_string_lossy())))?;
        let pid = child.id() as i32;
        // Not waited for: it outlives `up`; `down` stops it by its pid file.
        drop(child);
        let pid_file = dir.join(format!("{name}.pid"));
        let d = Daemon { name: name.to_string(), pid, pid_file, log: log_path, kept: false };
        std::fs::write(&d.pid_file, format!("{pid}\n")).map_err(|e| Error::Io { path: d.pid_file.clone(), source: e })?;
        Ok(d)
    }
    pub fn pid(&self) -> i32 {
        self.pid
    }
    pub fn log_path(&self) -> &Path {
        &self.log
    }
    /// An error when it has exited, with its log.
    pub fn check_running(&self) -> Result<(), Error> {
        if daemons::process::is_running(self.pid) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(Error::Step(format!("{} exited:\n{text}", self.name)))
    }
    /// Leaves it running (for `down`).
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.kept {
            let _ = daemons::process::stop_pid(self.pid, Duration::from_secs(5));
            let _ = std::fs::remove_file(&self.pid_file);
        }
    }
}

/// `kubetron controller`, detached, its pid in `<dir>/controller.pid`: the only process given the
/// Northbound address.
pub fn start_controller(plugin: &Path, dir: &Path, kubeconfig: &Path, backend: &[String], metrics_addr: &str) -> Result<Daemon, Error> {
    let mut cmd = Command::new(plugin);
    cmd.args(["controller", "--metrics-addr", metrics_addr, "--identity", "sandbox", "--gc-interval-secs", "30"])
        .args(backend)
        .env("KUBECONFIG", kubeconfig);
    let d = Daemon::spawn(CONTROLLER_PID.trim_end_matches(".pid"), dir, cmd)?;
    std::thread::sleep(Duration::from_millis(300));
    d.check_running().map_err(|e| Error::Step(format!("kubetron controller at start: {e}")))?;
    Ok(d)
}

/// Pid files of the node agents are `agent-<node>.pid`.
pub const AGENT_PREFIX: &str = "agent-";

/// What `kubetron node` on one chassis is given.
#[derive(Debug, Clone)]
pub struct AgentSpec<'a> {
    /// The chassis (= Kubernetes node) name.
    pub node: &'a str,
    /// The chassis' Open_vSwitch database.
    pub ovs_remote: &'a str,
    /// The chassis' network namespace: where the agent makes the host ends of the pods' veths.
    pub netns: &'a str,
    pub socket_dir: &'a Path,
    pub device_plugin_dir: &'a Path,
    pub metrics_addr: &'a str,
    /// The cluster's hand-off key file (the neutron backend signs its port IDs with it).
    pub handoff_key: Option<&'a Path>,
}

/// `kubetron node` for one chassis (cluster mode), detached, its pid in `<dir>/agent-<node>.pid`. It
/// runs in the root namespace (where the API server listens) and is never told the Northbound
/// address. There is no kubelet: its device-plugin registration only warns.
pub fn start_agent(plugin: &Path, dir: &Path, kubeconfig: &Path, spec: &AgentSpec) -> Result<Daemon, Error> {
    let mut cmd = Command::new(plugin);
    cmd.args(["node", "--node-name", spec.node, "--ovs-remote", spec.ovs_remote])
        .arg("--cni-socket-dir")
        .arg(spec.socket_dir)
        .arg("--device-plugin-dir")
        .arg(spec.device_plugin_dir)
        .args(["--metrics-addr", spec.metrics_addr])
        .arg("--host-netns")
        .arg(Path::new("/run/netns").join(spec.netns))
        .args(spec.handoff_key.map(|k| ["--handoff-key-file".as_ref(), k.as_os_str()]).into_iter().flatten())
        .env("KUBECONFIG", kubeconfig);
    Daemon::spawn(&format!("{AGENT_PREFIX}{}", spec.node), dir, cmd)
}

/// Waits until the agent answers a CNI STATUS through `shim` on `socket` (its caches are loaded).
pub fn wait_agent_ready(shim: &Path, agent: &Daemon, socket: &Path) -> Result<(), Error> {
    let config = json!({"cniVersion": "1.1.0", "name": "status", "type": "kubetron", "mode": "cluster",
                        "agent_socket": socket.display().to_string()});
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        agent.check_running()?;
        let out = testkit::cni::CniInvocation::new(shim, "STATUS")
            .config(&config)
            .timeout(Duration::from_secs(30))
            .run()
            .map_err(|e| Error::Step(format!("running {}: {e}", shim.display())))?;
        if out.success() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let msg = out.error().map(|e| e.msg).unwrap_or(out.stderr);
            return Err(Error::Step(format!("the node agent on {} did not get ready (CNI STATUS: {msg})", socket.display())));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates the pods `(name, node)` in `default` with the networks annotation and waits until the controller
/// has given each its addresses (`kubetron.io/interfaces`). Returns the pods' UIDs.
pub fn create_pods(kubeconfig: &Path, pods: &[(String, String)]) -> Result<Vec<String>, Error> {
    runtime()?.block_on(async {
        let c = client(kubeconfig).await?;
        let api: Api<Pod> = Api::namespaced(c, NAMESPACE);
        let mut uids = Vec::new();
        for (name, node) in pods {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": {"k8s.v1.cni.cncf.io/networks": NETWORKS_ANNOTATION}},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.invalid/sandbox:1"}]}
            }))
            .map_err(|e| Error::Step(e.to_string()))?;
            let created = api.create(&PostParams::default(), &pod).await.map_err(step_err(&format!("creating pod {name}")))?;
            uids.push(created.metadata.uid.unwrap_or_default());
        }
        for (name, _) in pods {
            poll(
                &format!("the controller to give pod {name} its addresses ({INTERFACES_ANNOTATION})"),
                Duration::from_secs(60),
                || async { api.get(name).await.ok()?.metadata.annotations?.get(INTERFACES_ANNOTATION).cloned() },
            )
            .await?;
        }
        Ok(uids)
    })
}

/// The annotations of one sandbox pod once its ports are up.
#[derive(Debug, Clone)]
pub struct PodAnnotations {
    pub name: String,
    /// `k8s.v1.cni.cncf.io/network-status` (the controller writes it once the ports are up).
    pub network_status: String,
    /// `kubetron.io/interfaces`: the controller's hand-off the agent plugged the pod from.
    pub handoff: String,
}

/// Waits for every pod's `k8s.v1.cni.cncf.io/network-status` (written once its ports are up); returns
/// it with the pod's hand-off.
pub fn network_status(kubeconfig: &Path, names: &[String]) -> Result<Vec<PodAnnotations>, Error> {
    runtime()?.block_on(async {
        let c = client(kubeconfig).await?;
        let api: Api<Pod> = Api::namespaced(c, NAMESPACE);
        let mut out = Vec::new();
        for name in names {
            let (network_status, handoff) = poll(&format!("pod {name}'s {NETWORK_STATUS_ANNOTATION}"), Duration::from_secs(60), || async {
                let a = api.get(name).await.ok()?.metadata.annotations?;
                let v = a.get(NETWORK_STATUS_ANNOTATION).cloned()?;
                // Both attachments listed.
                (model::status::parse_network_status(&v).ok()?.len() == NETWORKS.len())
                    .then_some((v, a.get(INTERFACES_ANNOTATION)?.clone()))
            })
            .await?;
            out.push(PodAnnotations { name: name.clone(), network_status, handoff });
        }
        Ok(out)
    })
}

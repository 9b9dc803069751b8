//! The sandbox's options and the state file (`sandbox.json`) that `down` and `status` read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// What `up` builds.
#[derive(Debug, Clone)]
pub struct Options {
    /// State directory (databases, sockets, pid files, logs).
    pub dir: PathBuf,
    /// Prefix of every network namespace the sandbox makes.
    pub prefix: String,
    /// Number of chassis (1 or 2).
    pub nodes: usize,
    /// The kubetron binary the pods are plugged with (the CNI plugin).
    pub plugin: PathBuf,
    /// Also run etcd + kube-apiserver, `kubetron controller` and a `kubetron node` per chassis; the
    /// pods are Kubernetes pods, plugged in cluster mode by the `kubetron-cni` shim.
    pub with_kube: bool,
}

/// File name of the cluster-mode CNI shim, built next to the kubetron binary.
pub const SHIM_NAME: &str = "kubetron-cni";

impl Options {
    pub fn new(dir: impl Into<PathBuf>, prefix: &str, nodes: usize, plugin: impl Into<PathBuf>) -> Options {
        Options { dir: dir.into(), prefix: prefix.to_string(), nodes, plugin: plugin.into(), with_kube: false }
    }
    /// The `kubetron-cni` shim: next to [`Options::plugin`].
    pub fn shim(&self) -> PathBuf {
        self.plugin.with_file_name(SHIM_NAME)
    }
    /// With (or without) the Kubernetes API server, the controller and the node agents.
    pub fn with_kube(mut self, on: bool) -> Options {
        self.with_kube = on;
        self
    }
}

/// The Kubernetes part of a `--with-kube` sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KubeState {
    /// The admin kubeconfig (`kubectl --kubeconfig ...`).
    pub kubeconfig: PathBuf,
    pub server: String,
    /// The controller's log file (its pid file is `controller.pid` in the state directory).
    pub controller_log: PathBuf,
    /// The controller's /metrics address.
    pub metrics_addr: String,
    /// The node agents, one per chassis.
    #[serde(default)]
    pub agents: Vec<AgentState>,
}

/// One node agent (`kubetron node`) of a `--with-kube` sandbox; its pid file is `agent-<node>.pid`
/// in the state directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentState {
    pub node: String,
    /// Its CNI socket (the `agent_socket` the shim is given).
    pub socket: PathBuf,
    pub metrics_addr: String,
    pub log: PathBuf,
}

/// One node of the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeState {
    pub name: String,
    pub netns: String,
    pub dir: PathBuf,
    pub db_remote: String,
}

/// One interface of a pod.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IfaceState {
    pub ifname: String,
    pub network: String,
    pub mac: String,
    pub ip: String,
}

/// One pod of the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodState {
    pub name: String,
    pub netns: String,
    pub node: usize,
    pub container_id: String,
    pub interfaces: Vec<IfaceState>,
}

/// Everything `down` and `status` need.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SandboxState {
    pub prefix: String,
    pub nb_remote: String,
    pub sb_remote: String,
    pub nodes: Vec<NodeState>,
    pub pods: Vec<PodState>,
    /// Present with `--with-kube`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeState>,
}

impl SandboxState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("sandbox.json")
    }
    pub fn load(dir: &Path) -> Result<Option<SandboxState>, Error> {
        let p = Self::path(dir);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| Error::Step(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io { path: p, source: e }),
        }
    }
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let p = Self::path(dir);
        let body = serde_json::to_vec_pretty(self).map_err(|e| Error::Step(e.to_string()))?;
        std::fs::write(&p, body).map_err(|e| Error::Io { path: p, source: e })
    }
}

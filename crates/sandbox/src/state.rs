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
    /// Also a VM the way KubeVirt runs one (launcher pod, bridge binding, qemu), on red and blue;
    /// with two nodes, one live migration node1 -> node2 ([`crate::vm`]).
    pub vm: bool,
    /// The networks come from a real neutron-server (ML2/OVN, noauth, private PostgreSQL) through
    /// its API, and the controller runs with `--backend neutron` (implies `with_kube`).
    pub neutron: bool,
}

/// File name of the cluster-mode CNI shim, built next to the kubetron binary.
pub const SHIM_NAME: &str = "kubetron-cni";
/// File name of the kubetron binary (the CNI plugin, `kubetron controller`, `kubetron node`).
pub const KUBETRON_NAME: &str = "kubetron";

/// The kubetron binary the sandbox runs: `explicit` when given (`--kubetron`, `KUBETRON_BIN`), else
/// the one next to `exe` (the sandbox's own executable: cargo builds both into the same target
/// directory). An error names the path looked at and how to get the binary there.
pub fn find_kubetron(explicit: Option<&Path>, exe: &Path) -> Result<PathBuf, Error> {
    let (path, hint) = match explicit {
        Some(p) => (p.to_path_buf(), "--kubetron / KUBETRON_BIN names no file".to_string()),
        None => (
            exe.with_file_name(KUBETRON_NAME),
            "the sandbox runs the kubetron binary next to its own executable: build both (cargo build -p kubetron -p cni -p sandbox \
             --bins, the same profile), or name it with --kubetron PATH or KUBETRON_BIN"
                .to_string(),
        ),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Missing { path, hint })
    }
}

impl Options {
    pub fn new(dir: impl Into<PathBuf>, prefix: &str, nodes: usize, plugin: impl Into<PathBuf>) -> Options {
        Options { dir: dir.into(), prefix: prefix.to_string(), nodes, plugin: plugin.into(), with_kube: false, vm: false, neutron: false }
    }
    /// With (or without) the VM.
    pub fn with_vm(mut self, on: bool) -> Options {
        self.vm = on;
        self
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
    /// With (or without) Neutron (and then the Kubernetes side too).
    pub fn with_neutron(mut self, on: bool) -> Options {
        self.neutron = on;
        self.with_kube |= on;
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
    /// Present with `--vm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<crate::vm::VmState>,
    /// Present with `--neutron`: neutron-server's API endpoint (its PostgreSQL and pid file live
    /// under the state directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neutron_url: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubetron_is_found_next_to_the_sandbox_or_where_named() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("kubetron-sandbox");
        let err = find_kubetron(None, &exe).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{} is missing", tmp.path().join("kubetron").display())), "{err}");
        assert!(err.contains("--kubetron PATH or KUBETRON_BIN"), "{err}");
        std::fs::write(tmp.path().join("kubetron"), b"").unwrap();
        assert_eq!(find_kubetron(None, &exe).unwrap(), tmp.path().join("kubetron"));

        // A named binary wins over the one next to the sandbox, and must exist itself.
        let named = tmp.path().join("other/kubetron");
        let err = find_kubetron(Some(&named), &exe).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{} is missing", named.display())), "{err}");
        std::fs::create_dir(tmp.path().join("other")).unwrap();
        std::fs::write(&named, b"").unwrap();
        assert_eq!(find_kubetron(Some(&named), &exe).unwrap(), named);
        // A directory is not a binary.
        assert!(find_kubetron(Some(tmp.path()), &exe).is_err());
    }
}

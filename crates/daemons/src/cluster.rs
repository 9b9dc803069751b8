//! A real one-node Kubernetes cluster for tests and the sandbox: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kubelet (built from Debian's `kubernetes` source by
//! `scripts/kube-build.sh`), containerd + runc from Debian as the CRI runtime, Debian's reference CNI
//! plugins (`bridge` + `host-local`) as the pod network.
//!
//! Owns: its state directory (PKI, etcd, containerd root/state, kubelet root, CNI bin + conf dirs, logs,
//! pid files); two bridges in the root netns ([`NODE_BRIDGE`] holds the node IP [`NODE_IP`], [`POD_BRIDGE`]
//! the pods' side of [`POD_CIDR`], no forwarding, no default route for pods); the host state the kubelet
//! and containerd change, put back at [`Cluster::stop`]: the sysctls the kubelet writes (restored as soon
//! as the node is Ready and again at stop), the `kubepods` cgroups, the `cni-*` network namespaces, the
//! mounts under the state directory, and the fixed directories containerd and the kubelet create
//! (`/var/lib/cni`, `/var/lib/kubelet`, `/run/containerd`, `/var/log/pods`, `/var/log/containers`),
//! removed only when this run created them. The kubelet is told not to touch iptables.
//! Must not touch: processes it did not start (everything is stopped by its pid); other netns and links.
//! One cluster per machine at a time (fixed bridge names, the kubelet's fixed device-plugin directory):
//! a lock file under /run serialises them.
//!
//! There is no kube-proxy and no cluster DNS: pods cannot reach ClusterIPs; the apiserver reaches
//! webhooks and aggregated APIs at their endpoints (`--enable-aggregator-routing`).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kube::{find_kube_bins, KubeApiServer, KubeConfig, KubeError, Managed, Result};

/// The binaries a cluster runs, all from one build directory (`$KUBE_BIN_DIR`).
pub const KUBE_BINS: [&str; 5] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"];
/// Bridge holding the node's InternalIP (the kubelet refuses a loopback node IP; there is no `dummy` netdev).
pub const NODE_BRIDGE: &str = "kt-node0";
/// The node's InternalIP (on [`NODE_BRIDGE`]): hostNetwork pods have it as their pod IP.
pub const NODE_IP: &str = "10.250.0.1";
/// Bridge of the default pod network (the host's side; `bridge` plugin, `isGateway: false`).
pub const POD_BRIDGE: &str = "kt-cni0";
pub const POD_CIDR: &str = "10.244.0.0/24";
pub const POD_GATEWAY: &str = "10.244.0.1";
/// The sandbox image containerd runs for every pod (see [`Cluster::import_image`]).
pub const PAUSE_IMAGE: &str = "kubetron.local/pause:1";
/// The default network's name in its conflist.
pub const POD_NETWORK: &str = "kt-podnet";

/// Sysctls the kubelet sets at start (`vm.overcommit_memory`, `kernel.panic`, ...), saved and restored.
pub const KUBELET_SYSCTLS: [&str; 6] = [
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
];
/// Fixed paths containerd and the kubelet create whatever their configuration says.
pub const FIXED_DIRS: [&str; 5] = ["/var/lib/cni", "/var/lib/kubelet", "/run/containerd", "/var/log/pods", "/var/log/containers"];
const LOCK_FILE: &str = "/run/kubetron-cluster.lock";
/// The running cluster's state directory and host changes (see [`HostState`]).
const STATE_FILE: &str = "/run/kubetron-cluster.state";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

/// Where and with what to run the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// State directory (created; removed by [`Cluster::stop`] except `logs/`).
    pub dir: PathBuf,
    /// Directory holding [`KUBE_BINS`].
    pub bin_dir: PathBuf,
    /// The node's name.
    pub node_name: String,
    /// Where Debian's CNI plugins are (`/usr/lib/cni`).
    pub cni_plugins: PathBuf,
    /// Host directories the workloads make (hostPath `DirectoryOrCreate`): removed at stop when they did
    /// not exist before.
    pub host_dirs: Vec<PathBuf>,
}

impl ClusterConfig {
    /// `dir` with the binaries from `$KUBE_BIN_DIR`, else found or built by [`find_kube_bins`].
    pub fn new(dir: impl Into<PathBuf>, node_name: &str) -> Result<ClusterConfig> {
        let bin_dir = match std::env::var_os("KUBE_BIN_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => {
                let bins = find_kube_bins(&KUBE_BINS)?;
                bins[0].parent().map(Path::to_path_buf).unwrap_or_default()
            }
        };
        for b in KUBE_BINS {
            if !bin_dir.join(b).is_file() {
                return Err(KubeError::NoBinary(format!("{} is not a file", bin_dir.join(b).display())));
            }
        }
        Ok(ClusterConfig {
            dir: dir.into(),
            bin_dir,
            node_name: node_name.to_string(),
            cni_plugins: PathBuf::from("/usr/lib/cni"),
            host_dirs: vec![],
        })
    }
}

/// What the cluster changed on the host, to put back. Also kept in [`STATE_FILE`] while the cluster
/// runs, so that the next start can put the host back after a run that was killed.
#[derive(Debug, Default)]
struct HostState {
    sysctls: Vec<(String, String)>,
    created_dirs: Vec<PathBuf>,
    netns_before: BTreeSet<String>,
    links: Vec<String>,
    cgroups: Vec<PathBuf>,
}

impl HostState {
    fn to_json(&self, dir: &Path) -> serde_json::Value {
        serde_json::json!({
            "dir": dir,
            "sysctls": self.sysctls,
            "created_dirs": self.created_dirs,
            "netns_before": self.netns_before,
            "links": self.links,
            "cgroups": self.cgroups,
        })
    }

    fn from_json(v: &serde_json::Value) -> Option<(PathBuf, HostState)> {
        let strings =
            |k: &str| -> Vec<String> { v[k].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect() };
        let sysctls = v["sysctls"]
            .as_array()?
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string())))
            .collect();
        let host = HostState {
            sysctls,
            created_dirs: strings("created_dirs").into_iter().map(PathBuf::from).collect(),
            netns_before: strings("netns_before").into_iter().collect(),
            links: strings("links"),
            cgroups: strings("cgroups").into_iter().map(PathBuf::from).collect(),
        };
        Some((PathBuf::from(v["dir"].as_str()?), host))
    }

    fn save(&self, dir: &Path) {
        if let Err(e) = std::fs::write(STATE_FILE, self.to_json(dir).to_string()) {
            tracing::warn!("writing {STATE_FILE}: {e}");
        }
    }

    fn restore_sysctls(&self) {
        for (k, v) in &self.sysctls {
            let path = sysctl_path(k);
            if std::fs::read_to_string(&path).map(|cur| cur.trim() != v).unwrap_or(true) {
                if let Err(e) = std::fs::write(&path, v) {
                    tracing::warn!("restoring sysctl {k}={v}: {e}");
                } else {
                    tracing::info!("restored sysctl {k}={v}");
                }
            }
        }
    }

    /// Puts the host back (every step is idempotent) and removes the disposable state under `dir`.
    fn restore(&mut self, dir: &Path) {
        unmount_under(dir);
        for ns in list_netns().difference(&self.netns_before) {
            if ns.starts_with("cni-") {
                let p = Path::new("/run/netns").join(ns);
                let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
                if let Err(e) = std::fs::remove_file(&p) {
                    tracing::warn!("removing netns {}: {e}", p.display());
                }
            }
        }
        for name in self.links.drain(..).rev() {
            if !Path::new("/sys/class/net").join(&name).exists() {
                continue;
            }
            // Pod veths on the bridge go with their netns; any left are removed with the bridge's ports.
            for port in bridge_ports(&name) {
                let _ = ip(&["link", "del", &port]);
            }
            if let Err(e) = ip(&["link", "del", &name]) {
                tracing::warn!("{e}");
            }
        }
        for cg in self.cgroups.drain(..) {
            remove_cgroup_tree(&cg);
        }
        self.restore_sysctls();
        for d in self.created_dirs.drain(..) {
            unmount_under(&d);
            if let Err(e) = std::fs::remove_dir_all(&d) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", d.display());
                }
            }
        }
        // Disposable state (the logs stay for the test's report).
        for d in ["containerd", "run", "kubelet", "cni", "kube/etcd-data"] {
            let p = dir.join(d);
            if let Err(e) = std::fs::remove_dir_all(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", p.display());
                }
            }
        }
        let _ = std::fs::remove_file(STATE_FILE);
    }
}

/// A run that was killed left its processes and host changes behind ([`STATE_FILE`] names them):
/// stop its processes by their pid files (the control plane's, containerd's), kill what still runs in its
/// `kubepods` cgroups and the containers' shims (the parents of the pids in the bundles' `init.pid`), and
/// put the host back.
fn recover_crashed_run() {
    let Ok(text) = std::fs::read_to_string(STATE_FILE) else { return };
    let Some((dir, mut host)) = serde_json::from_str(&text).ok().as_ref().and_then(HostState::from_json) else {
        tracing::warn!("{STATE_FILE} is not readable state; ignoring it");
        let _ = std::fs::remove_file(STATE_FILE);
        return;
    };
    tracing::warn!(dir = %dir.display(), "a killed cluster run left its state: cleaning it up first");
    let mut pidfiles = Vec::new();
    for sub in ["logs", "kube"] {
        if let Ok(d) = std::fs::read_dir(dir.join(sub)) {
            pidfiles.extend(d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pid")));
        }
    }
    // The runtime's shims outlive containerd. Each container's bundle has its init process' pid file
    // (`init.pid`); that process' parent is its shim: note them before the containers go.
    let mut inits = Vec::new();
    find_files(&dir.join("run/containerd"), "init.pid", &mut inits);
    let shims: BTreeSet<i32> = inits.iter().filter_map(|p| crate::process::read_pidfile(p).ok().flatten()).filter_map(parent_pid).collect();
    for p in &pidfiles {
        if let Ok(Some(pid)) = crate::process::read_pidfile(p) {
            if let Err(e) = crate::process::stop_pid(pid, Duration::from_secs(10)) {
                tracing::warn!("stopping pid {pid} ({}): {e}", p.display());
            }
        }
    }
    for cg in &host.cgroups {
        kill_cgroup_tree(cg);
    }
    for pid in shims {
        if let Err(e) = crate::process::kill_pid(pid) {
            tracing::warn!("stopping the shim {pid}: {e}");
        }
    }
    host.restore(&dir);
}

/// The parent of `pid` (`/proc/<pid>/stat` field 4), if it runs and is not init.
pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses; the last `)` ends it.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok().filter(|p| *p > 1)
}

fn find_files(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(d) = std::fs::read_dir(dir) else { return };
    for e in d.filter_map(|e| e.ok()) {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find_files(&p, name, out);
        } else if e.file_name() == name {
            out.push(p);
        }
    }
}

/// SIGKILLs every process in a cgroup tree (the containers of a killed run).
fn kill_cgroup_tree(root: &Path) {
    let Ok(d) = std::fs::read_dir(root) else { return };
    for e in d.filter_map(|e| e.ok()) {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            kill_cgroup_tree(&e.path());
        }
    }
    let procs = std::fs::read_to_string(root.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = crate::process::kill_pid(pid);
    }
}

/// A running cluster. Stopped by [`Cluster::stop`] or on drop.
pub struct Cluster {
    cfg: ClusterConfig,
    dir: PathBuf,
    api: Option<KubeApiServer>,
    containerd: Option<Managed>,
    control: Vec<Managed>,
    kubelet: Option<Managed>,
    host: HostState,
    /// The machine-wide lock, held while the cluster runs (`None` only once abandoned).
    lock: Option<File>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("dir", &self.dir).field("node", &self.cfg.node_name).finish()
    }
}

impl Cluster {
    /// Starts everything and waits until the node is Ready and the `default` service account exists.
    /// Images the pods need are imported with [`Cluster::import_image`] (the pause image, [`PAUSE_IMAGE`],
    /// before the first pod). On error, whatever was started is stopped and the host put back.
    pub fn start(cfg: ClusterConfig) -> Result<Cluster> {
        let t0 = Instant::now();
        std::fs::create_dir_all(&cfg.dir).map_err(|e| KubeError::io(format!("create {}", cfg.dir.display()), e))?;
        let dir = cfg.dir.canonicalize().map_err(|e| KubeError::io(format!("canonicalize {}", cfg.dir.display()), e))?;
        let lock = take_lock()?;
        recover_crashed_run();
        let mut c =
            Cluster { cfg, dir, api: None, containerd: None, control: vec![], kubelet: None, host: HostState::default(), lock: Some(lock) };
        // From here on, an early return drops `c`, which stops what was started and restores the host.
        c.prepare_host()?;
        c.start_containerd()?;
        c.start_control_plane()?;
        c.start_kubelet()?;
        tracing::info!(elapsed = ?t0.elapsed(), node = %c.cfg.node_name, "cluster ready");
        Ok(c)
    }

    /// The state directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The admin kubeconfig (group `system:masters`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.api().map(KubeApiServer::kubeconfig_path).unwrap_or_default()
    }
    /// The API server (its PKI, URL, user kubeconfigs).
    pub fn api(&self) -> Option<&KubeApiServer> {
        self.api.as_ref()
    }
    /// Leaves everything running and the host changed, as a killed run does, and releases the
    /// machine-wide lock: for testing that the next [`Cluster::start`] cleans up after it.
    #[doc(hidden)]
    pub fn abandon(mut self) {
        drop(self.lock.take());
        std::mem::forget(self);
    }

    /// Pids of the processes it runs (for leak checks).
    pub fn pids(&self) -> Vec<u32> {
        let mut p: Vec<u32> = self.api.iter().flat_map(|a| a.pids()).collect();
        p.extend(self.containerd.iter().chain(self.control.iter()).chain(self.kubelet.iter()).map(Managed::pid));
        p
    }
    pub fn node_name(&self) -> &str {
        &self.cfg.node_name
    }
    /// The directory the runtime runs CNI plugins from.
    pub fn cni_bin_dir(&self) -> PathBuf {
        self.dir.join("cni/bin")
    }
    /// The directory the runtime reads network configs from (the default network's conflist is there).
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni/net.d")
    }
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("run/containerd/containerd.sock")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// `kubectl` from the same build, as the admin.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.cfg.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig").arg(self.kubeconfig_path());
        cmd
    }

    /// Runs kubectl with `args`; its stdout, or an error with its stderr.
    pub fn kubectl_run(&self, args: &[&str]) -> Result<String> {
        run_named(format!("kubectl {}", args.join(" ")), self.kubectl().args(args))
    }

    /// `ctr -n k8s.io images import <archive>` (a docker-archive tarball, e.g. from `scripts/images.sh`).
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        let sock = self.containerd_socket();
        run_ok(Command::new("ctr").arg("--address").arg(&sock).args(["-n", "k8s.io", "images", "import"]).arg(archive))?;
        Ok(())
    }

    fn prepare_host(&mut self) -> Result<()> {
        for d in ["logs", "cni/bin", "cni/net.d", "cni/ipam", "containerd", "run/containerd", "kubelet/root", "kubelet/pki"] {
            mkdir(&self.dir.join(d))?;
        }
        for p in KUBELET_SYSCTLS {
            let v = std::fs::read_to_string(sysctl_path(p)).map_err(|e| KubeError::io(format!("read sysctl {p}"), e))?;
            self.host.sysctls.push((p.to_string(), v.trim().to_string()));
        }
        for d in FIXED_DIRS.iter().map(PathBuf::from).chain(self.cfg.host_dirs.iter().cloned()) {
            if !d.exists() {
                self.host.created_dirs.push(d);
            }
        }
        self.host.netns_before = list_netns();
        for ctrl in cgroup_controllers() {
            let kp = ctrl.join("kubepods");
            if kp.exists() {
                return Err(KubeError::Invalid {
                    field: "host",
                    value: kp.display().to_string(),
                    reason: "exists: another kubelet runs (or a crashed one left it); refusing to share it".into(),
                });
            }
            self.host.cgroups.push(kp);
        }
        self.host.links = vec![NODE_BRIDGE.to_string(), POD_BRIDGE.to_string()];
        self.host.save(&self.dir);
        for (name, addr) in [(NODE_BRIDGE, format!("{NODE_IP}/32")), (POD_BRIDGE, format!("{POD_GATEWAY}/24"))] {
            if Path::new("/sys/class/net").join(name).exists() {
                // A leftover nobody recorded (the lock says no cluster runs now).
                ip(&["link", "del", name])?;
            }
            ip(&["link", "add", name, "type", "bridge"])?;
            ip(&["addr", "add", &addr, "dev", name])?;
            ip(&["link", "set", name, "up"])?;
        }
        for plugin in ["bridge", "host-local", "loopback", "portmap"] {
            let link = self.cni_bin_dir().join(plugin);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(self.cfg.cni_plugins.join(plugin), &link)
                .map_err(|e| KubeError::io(format!("symlink {}", link.display()), e))?;
        }
        let conflist = serde_json::json!({
            "cniVersion": "0.4.0", "name": POD_NETWORK,
            "plugins": [{"type": "bridge", "bridge": POD_BRIDGE, "isGateway": false, "ipMasq": false, "hairpinMode": true,
                         "ipam": {"type": "host-local", "dataDir": self.dir.join("cni/ipam"),
                                  "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]]}}]
        });
        write(&self.cni_conf_dir().join("10-kt-podnet.conflist"), &serde_json::to_string_pretty(&conflist).unwrap_or_default())
    }

    fn start_containerd(&mut self) -> Result<()> {
        let d = &self.dir;
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # No CAP_SYS_RESOURCE here: runc may not lower a container's oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
    max_conf_num = 1
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = d.join("containerd/root").display(),
            state = d.join("run/containerd").display(),
            sock = self.containerd_socket().display(),
            bin = self.cni_bin_dir().display(),
            conf = self.cni_conf_dir().display(),
            opt = d.join("containerd/opt").display(),
        );
        let path = d.join("containerd/config.toml");
        write(&path, &config)?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&path);
        let m = self.containerd.insert(Managed::spawn("containerd", &self.dir.join("logs"), cmd)?);
        wait(m, "containerd's socket", Duration::from_secs(30), || self.dir.join("run/containerd/containerd.sock").exists())
    }

    fn start_control_plane(&mut self) -> Result<()> {
        let bin = |n: &str| self.cfg.bin_dir.join(n);
        let api = KubeApiServer::start(KubeConfig { dir: self.dir.join("kube"), apiserver_bin: bin("kube-apiserver"), with_nodes: true })?;
        let pki = api.pki().clone();
        let cm_kc = api.make_user_kubeconfig("system:kube-controller-manager", &[])?;
        let sched_kc = api.make_user_kubeconfig("system:kube-scheduler", &[])?;
        self.api = Some(api);
        let logs = self.dir.join("logs");

        let mut cm = Command::new(bin("kube-controller-manager"));
        cm.arg(format!("--kubeconfig={}", cm_kc.display()))
            .arg(format!("--authentication-kubeconfig={}", cm_kc.display()))
            .arg(format!("--authorization-kubeconfig={}", cm_kc.display()))
            .args(["--bind-address=127.0.0.1", "--secure-port=10257", "--port=0", "--leader-elect=false"])
            .arg("--use-service-account-credentials=true")
            .arg(format!("--service-account-private-key-file={}", pki.sa_key.display()))
            .arg(format!("--root-ca-file={}", pki.ca.cert.display()))
            .arg(format!("--cluster-signing-cert-file={}", pki.ca.cert.display()))
            .arg(format!("--cluster-signing-key-file={}", pki.ca.key.display()));
        self.control.push(Managed::spawn("kube-controller-manager", &logs, cm)?);

        let mut sched = Command::new(bin("kube-scheduler"));
        sched
            .arg(format!("--kubeconfig={}", sched_kc.display()))
            .arg(format!("--authentication-kubeconfig={}", sched_kc.display()))
            .arg(format!("--authorization-kubeconfig={}", sched_kc.display()))
            .args(["--bind-address=127.0.0.1", "--secure-port=10259", "--port=0", "--leader-elect=false"]);
        self.control.push(Managed::spawn("kube-scheduler", &logs, sched)?);
        Ok(())
    }

    fn start_kubelet(&mut self) -> Result<()> {
        let api = self.api.as_ref().ok_or_else(|| KubeError::NoBinary("no apiserver".into()))?;
        let node = self.cfg.node_name.clone();
        let kc = api.make_user_kubeconfig(&format!("system:node:{node}"), &["system:nodes"])?;
        let ca = api.pki().ca.cert.clone();
        let config = format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication: {{anonymous: {{enabled: false}}, webhook: {{enabled: false}}, x509: {{clientCAFile: "{ca}"}}}}
authorization: {{mode: AlwaysAllow}}
cgroupDriver: cgroupfs
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
nodeStatusUpdateFrequency: 4s
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
imageGCHighThresholdPercent: 100
# Never on a shared host: KUBE-FIREWALL / KUBE-POSTROUTING chains.
makeIPTablesUtilChains: false
"#,
            ca = ca.display()
        );
        let cfg_path = self.dir.join("kubelet/config.yaml");
        write(&cfg_path, &config)?;
        let sock = format!("unix://{}", self.containerd_socket().display());
        let mut cmd = Command::new(self.cfg.bin_dir.join("kubelet"));
        cmd.arg(format!("--config={}", cfg_path.display()))
            .arg(format!("--kubeconfig={}", kc.display()))
            .arg(format!("--root-dir={}", self.dir.join("kubelet/root").display()))
            .arg(format!("--cert-dir={}", self.dir.join("kubelet/pki").display()))
            .arg(format!("--hostname-override={node}"))
            .arg(format!("--node-ip={NODE_IP}"))
            .arg("--container-runtime=remote")
            .arg(format!("--container-runtime-endpoint={sock}"))
            .arg(format!("--image-service-endpoint={sock}"))
            .arg(format!("--pod-infra-container-image={PAUSE_IMAGE}"));
        self.kubelet = Some(Managed::spawn("kubelet", &self.dir.join("logs"), cmd)?);
        let t0 = Instant::now();
        loop {
            if let Some(k) = self.kubelet.as_mut() {
                k.check_running()?;
            }
            let ready = self
                .kubectl_run(&["get", "node", &node, "-o", r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#])
                .map(|s| s.trim() == "True")
                .unwrap_or(false);
            let sa = ready && self.kubectl_run(&["get", "serviceaccount", "default", "-o", "name"]).is_ok();
            if sa {
                break;
            }
            if t0.elapsed() > READY_TIMEOUT {
                let k = self.kubelet.as_ref().ok_or_else(|| KubeError::NoBinary("kubelet".into()))?;
                return Err(k.timeout(format!("node {node} Ready and the default service account"), READY_TIMEOUT));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // The kubelet wrote its sysctls once at start: put them back now.
        self.restore_sysctls();
        Ok(())
    }

    fn restore_sysctls(&self) {
        self.host.restore_sysctls();
    }

    /// Deletes every pod (those on the pod network first, so that the network plugins, which run
    /// with hostNetwork, still serve their CNI DEL), waiting for the kubelet to tear them down.
    fn drain(&self) {
        // The controllers are stopped: nothing recreates what is deleted here.
        for host_network in [false, true] {
            let pods = match self.pods_by_network(host_network) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("drain: {e}");
                    return;
                }
            };
            let mut by_ns: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (ns, name) in &pods {
                by_ns.entry(ns).or_default().push(name);
            }
            for (ns, names) in by_ns {
                let mut args = vec!["delete", "pod", "-n", ns, "--grace-period=1", "--wait=false"];
                args.extend(names);
                if let Err(e) = self.kubectl_run(&args) {
                    tracing::warn!("drain: {e}");
                }
            }
            let t0 = Instant::now();
            while !pods.is_empty() && t0.elapsed() < DRAIN_TIMEOUT {
                if self.pods_by_network(host_network).map(|p| p.is_empty()).unwrap_or(true) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    /// `(namespace, name)` of the pods on the host network (`true`) or on the pod network.
    fn pods_by_network(&self, host_network: bool) -> Result<Vec<(String, String)>> {
        let list: serde_json::Value = serde_json::from_str(&self.kubectl_run(&["get", "pods", "-A", "-o", "json"])?).unwrap_or_default();
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["spec"]["hostNetwork"].as_bool().unwrap_or(false) == host_network)
            .filter_map(|p| Some((p["metadata"]["namespace"].as_str()?.to_string(), p["metadata"]["name"].as_str()?.to_string())))
            .collect())
    }

    /// Containers the runtime still holds: killed and removed (their network is not torn down: their
    /// netns are deleted afterwards).
    fn remove_containers(&self) {
        let sock = self.containerd_socket();
        let ctr = |args: &[&str]| {
            Command::new("ctr").arg("--address").arg(&sock).args(["-n", "k8s.io"]).args(args).output().ok().filter(|o| o.status.success())
        };
        let Some(out) = ctr(&["containers", "ls", "-q"]) else { return };
        for id in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
            let _ = ctr(&["tasks", "delete", "-f", id]);
            let _ = ctr(&["containers", "delete", id]);
        }
    }

    /// Stops everything by pid and puts the host back. Idempotent; logs what it could not undo.
    pub fn stop(&mut self) -> Result<()> {
        let mut first: Option<KubeError> = None;
        // Stop the controllers first: nothing recreates the pods drained next.
        for mut m in self.control.drain(..).rev() {
            if let Err(e) = m.stop() {
                first.get_or_insert(e);
            }
        }
        if self.kubelet.is_some() && self.api.is_some() {
            self.drain();
        }
        if let Some(mut k) = self.kubelet.take() {
            if let Err(e) = k.stop() {
                first.get_or_insert(e);
            }
        }
        if let Some(mut api) = self.api.take() {
            if let Err(e) = api.stop() {
                first.get_or_insert(e);
            }
        }
        if self.containerd.is_some() {
            self.remove_containers();
        }
        if let Some(mut c) = self.containerd.take() {
            if let Err(e) = c.stop() {
                first.get_or_insert(e);
            }
        }
        self.restore_host();
        first.map_or(Ok(()), Err)
    }

    fn restore_host(&mut self) {
        let dir = self.dir.clone();
        self.host.restore(&dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("cluster teardown: {e}");
        }
    }
}

fn take_lock() -> Result<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .map_err(|e| KubeError::io(format!("open {LOCK_FILE}"), e))?;
    // Blocks while another cluster runs on this machine (tests in parallel take turns).
    lock_exclusive(&f)?;
    Ok(f)
}

fn lock_exclusive(f: &File) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; the lock is released when the file is closed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if rc == 0 {
        Ok(())
    } else {
        Err(KubeError::io(format!("flock {LOCK_FILE}"), std::io::Error::last_os_error()))
    }
}

fn sysctl_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name.replace('.', "/"))
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| KubeError::io(format!("create {}", p.display()), e))
}

fn write(p: &Path, text: &str) -> Result<()> {
    std::fs::write(p, text).map_err(|e| KubeError::io(format!("write {}", p.display()), e))
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    run_named(format!("{cmd:?}"), cmd)
}

/// Runs `cmd`; its stdout, or an error naming it `command` with its stderr.
fn run_named(command: String, cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| KubeError::io(format!("run {:?}", cmd.get_program()), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(KubeError::Command { command, status: out.status.to_string(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

fn ip(args: &[&str]) -> Result<String> {
    run_ok(Command::new("ip").args(args))
}

fn wait(m: &mut Managed, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let t0 = Instant::now();
    loop {
        m.check_running()?;
        if ready() {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Err(m.timeout(what.to_string(), timeout));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn list_netns() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(Path::new("/sys/class/net").join(bridge).join("brif"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// The mounted cgroup v1 hierarchies (`/sys/fs/cgroup/<name>`, real directories, not the comounted
/// symlinks) and the v2 one if mounted alone.
fn cgroup_controllers() -> Vec<PathBuf> {
    let Ok(d) = std::fs::read_dir("/sys/fs/cgroup") else { return vec![] };
    let mut out: Vec<PathBuf> = d
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if out.is_empty() && Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
        out.push(PathBuf::from("/sys/fs/cgroup"));
    }
    out.sort();
    out
}

/// rmdir a cgroup tree bottom-up (a cgroup directory is removed with rmdir, never by deleting files).
fn remove_cgroup_tree(root: &Path) {
    if !root.exists() {
        return;
    }
    if let Ok(d) = std::fs::read_dir(root) {
        for e in d.filter_map(|e| e.ok()) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(root) {
        tracing::warn!("rmdir {}: {e}", root.display());
    }
}

/// Unmounts everything mounted at or below `dir`, deepest first (lazily: a busy mount goes when released).
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        if let Err(e) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("umount {}: {e}", p.display());
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_unescape() {
        assert_eq!(unescape_mount_path(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
        assert_eq!(unescape_mount_path(r"/x\134y"), r"/x\y");
    }

    #[test]
    fn host_state_survives_its_file() {
        let h = HostState {
            sysctls: vec![("kernel.panic".into(), "1".into())],
            created_dirs: vec![PathBuf::from("/var/lib/kubelet")],
            netns_before: ["a".to_string()].into_iter().collect(),
            links: vec![NODE_BRIDGE.into()],
            cgroups: vec![PathBuf::from("/sys/fs/cgroup/memory/kubepods")],
        };
        let v: serde_json::Value = serde_json::from_str(&h.to_json(Path::new("/tmp/x")).to_string()).expect("json");
        let (dir, back) = HostState::from_json(&v).expect("parsed");
        assert_eq!(dir, Path::new("/tmp/x"));
        assert_eq!(format!("{back:?}"), format!("{h:?}"));
    }

    #[test]
    fn parent_of_this_process() {
        let me = std::process::id() as i32;
        assert_eq!(parent_pid(me), Some(nix::unistd::getppid().as_raw()).filter(|p| *p > 1));
        assert_eq!(parent_pid(i32::MAX), None);
    }

    #[test]
    fn sysctl_names_map_to_proc() {
        assert_eq!(sysctl_path("vm.overcommit_memory"), Path::new("/proc/sys/vm/overcommit_memory"));
    }
}

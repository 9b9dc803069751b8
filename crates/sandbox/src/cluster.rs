//! `kubetron-sandbox cluster`: kubetron installed the way a user installs it, into a real one-node
//! cluster ([`daemons::cluster`]: kubelet, containerd, the control plane): images imported without a
//! registry (`scripts/images.sh`), `kubectl apply -k` of an overlay of deploy/ that overrides only what
//! this machine needs (below), OVN networks `red` and `blue` made with `ovn-nbctl` and exposed to
//! `default`, synced into NADs by the controller.
//!
//! What the overlay overrides, and why:
//! - the image (`kubetron.local/kubetron:<tag>`) and the OVN Northbound address (`tcp:127.0.0.1:PORT`:
//!   databases here listen on unix sockets or 127.0.0.1 only), and the cluster network's name for the
//!   eth0 entry of network-status (no Multus writes it);
//! - the node's Open vSwitch: this machine's chassis runs in a network namespace of its own (tests never
//!   put OVS on the host), so the agent gets `--host-netns` and the chassis' database socket;
//! - the CNI directories: the runtime's, under the cluster's state directory;
//! - no kube-proxy runs, so kubetron's pods use hostNetwork and reach the apiserver at 127.0.0.1
//!   (`KUBERNETES_SERVICE_HOST/PORT`), and their metrics listen on 127.0.0.1;
//! - one controller replica (two with hostNetwork would share the metrics port).
//!
//! Owns: its state directory, the chassis netns, the cluster (which puts the host back). Must not touch
//! anything else.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use daemons::cluster::{Cluster, ClusterConfig, PAUSE_IMAGE};
use daemons::{Central, Chassis, ChassisConfig};

use crate::Error;

/// The node's name (and its chassis').
pub const NODE: &str = "kt-node";
/// The chassis' network namespace.
pub const CHASSIS_NETNS: &str = "kt-node-ovs";
/// The chassis' tunnel address (198.51.100.0/24 is the test nodes' network).
const ENCAP_IP: &str = "198.51.100.21";
/// The physical network the node maps (`ovn-bridge-mappings`), for node-bound networks.
pub const PHYSNET: &str = "physnet1";
/// The test images `scripts/images.sh` makes besides kubetron's.
pub const BUSYBOX_IMAGE: &str = "kubetron.local/busybox:1";
const KUBETRON_IMAGE_PREFIX: &str = "kubetron.local/kubetron:";
const WAIT: Duration = Duration::from_secs(180);

/// A network made with `ovn-nbctl`, exposed to namespace `default`.
#[derive(Debug, Clone, Copy)]
pub struct Network {
    pub name: &'static str,
    /// /24 prefix, e.g. `10.10.1`.
    pub prefix: &'static str,
    /// A `localnet` port on this physical network (a node-bound network).
    pub physnet: Option<&'static str>,
}

/// The demo's networks.
pub const DEMO_NETWORKS: [Network; 2] =
    [Network { name: "red", prefix: "10.10.1", physnet: None }, Network { name: "blue", prefix: "10.10.2", physnet: None }];

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// State directory.
    pub dir: PathBuf,
    /// Lines `<tag> <archive>` as `scripts/images.sh` prints them; `None`: run the script (release build).
    pub images_index: Option<PathBuf>,
}

/// kubetron in a real cluster. Dropped (or [`ClusterSandbox::stop`]) in this order: the cluster (its
/// pods drained while kubetron's node agent still serves their CNI DEL), the chassis, OVN central.
pub struct ClusterSandbox {
    pub cluster: Cluster,
    pub chassis: Chassis,
    pub central: Central,
    pub dir: PathBuf,
    pub kubetron_image: String,
}

impl std::fmt::Debug for ClusterSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSandbox").field("dir", &self.dir).field("image", &self.kubetron_image).finish()
    }
}

fn step<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Step(format!("{what}: {e}"))
}

/// The repository's deploy/ directory (the sandbox runs from the repository).
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Runs `scripts/images.sh <dir>/images` (a release build of kubetron) and returns its index file.
pub fn build_images(dir: &Path) -> Result<PathBuf, Error> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/images.sh");
    let out_dir = dir.join("images");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out_dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(step("running scripts/images.sh"))?;
    if !out.status.success() {
        return Err(Error::Step(format!("{} failed ({})", script.display(), out.status)));
    }
    let index = out_dir.join("index");
    std::fs::write(&index, &out.stdout).map_err(|e| Error::Io { path: index.clone(), source: e })?;
    Ok(index)
}

/// `(tag, archive)` pairs of an images index.
pub fn read_index(index: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::Io { path: index.to_path_buf(), source: e })?;
    let base = index.parent().unwrap_or(Path::new("."));
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(tag, path)| {
            let p = PathBuf::from(path.trim());
            (tag.trim().to_string(), if p.is_absolute() { p } else { base.join(p) })
        })
        .collect())
}

impl ClusterSandbox {
    /// Starts the cluster, OVN and the chassis, imports the images, applies the overlay of deploy/ and
    /// waits until kubetron's pods are ready.
    pub fn up(opts: &ClusterOptions) -> Result<ClusterSandbox, Error> {
        let t0 = Instant::now();
        std::fs::create_dir_all(&opts.dir).map_err(|e| Error::Io { path: opts.dir.clone(), source: e })?;
        let dir = opts.dir.canonicalize().map_err(|e| Error::Io { path: opts.dir.clone(), source: e })?;
        let index = match &opts.images_index {
            Some(i) => i.clone(),
            None => build_images(&dir)?,
        };
        let images = read_index(&index)?;
        let kubetron_image = images
            .iter()
            .map(|(t, _)| t.clone())
            .find(|t| t.starts_with(KUBETRON_IMAGE_PREFIX))
            .ok_or_else(|| Error::Step(format!("{}: no {KUBETRON_IMAGE_PREFIX}* image", index.display())))?;
        for needed in [PAUSE_IMAGE, BUSYBOX_IMAGE] {
            if !images.iter().any(|(t, _)| t == needed) {
                return Err(Error::Step(format!("{}: no {needed} image", index.display())));
            }
        }

        // The cluster first: it takes the machine-wide lock before anything with a fixed name is made.
        let mut cfg = ClusterConfig::new(dir.join("k8s"), NODE).map_err(step("cluster binaries"))?;
        cfg.host_dirs.push(PathBuf::from("/run/kubetron"));
        let cluster = Cluster::start(cfg).map_err(step("starting the cluster"))?;
        tracing::info!(elapsed = ?t0.elapsed(), "cluster up");
        for (tag, archive) in &images {
            cluster.import_image(archive).map_err(step(&format!("importing {tag}")))?;
        }
        // The Northbound database also on 127.0.0.1 (the controller's pod uses the host network).
        let central = Central::start(&dir.join("ovn"), true)?;
        let mut ch = ChassisConfig::new(NODE, dir.join("chassis"), CHASSIS_NETNS, &central.sb().unix_remote(), ENCAP_IP);
        ch.bridge_mappings = vec![(PHYSNET.to_string(), "br-phys1".to_string())];
        let chassis = Chassis::start(ch)?;
        chassis.wait_registered(&central.sb().unix_remote(), Duration::from_secs(60))?;
        let sb = ClusterSandbox { cluster, chassis, central, dir, kubetron_image };
        for net in DEMO_NETWORKS {
            sb.make_network(&net)?;
        }
        sb.install()?;
        tracing::info!(elapsed = ?t0.elapsed(), "kubetron installed");
        Ok(sb)
    }

    /// Makes a logical switch the way an OVN administrator does, with `ovn-nbctl`: subnet, native DHCP,
    /// exposed to namespace `default`; with a `localnet` port when `physnet` is set.
    pub fn make_network(&self, net: &Network) -> Result<(), Error> {
        let (n, p) = (net.name, net.prefix);
        let cidr = format!("{p}.0/24");
        self.central.nbctl(&[
            "--may-exist",
            "ls-add",
            n,
            "--",
            "set",
            "Logical_Switch",
            n,
            &format!("other_config:subnet={cidr}"),
            &format!("other_config:exclude_ips={p}.1..{p}.9"),
            "external_ids:\"kubetron.io/namespaces\"=default",
        ])?;
        self.central.nbctl(&[
            "create",
            "DHCP_Options",
            &format!("cidr={cidr}"),
            &format!("options=\"lease_time\"=\"3600\" \"router\"=\"{p}.1\" \"server_id\"=\"{p}.1\" \"server_mac\"=\"0a:00:00:00:00:01\" \"mtu\"=\"1400\""),
        ])?;
        if let Some(physnet) = net.physnet {
            let port = format!("{n}-localnet");
            self.central.nbctl(&[
                "lsp-add",
                n,
                &port,
                "--",
                "lsp-set-type",
                &port,
                "localnet",
                "--",
                "lsp-set-addresses",
                &port,
                "unknown",
                "--",
                "lsp-set-options",
                &port,
                &format!("network_name={physnet}"),
            ])?;
        }
        Ok(())
    }

    /// Runs the cluster's kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, Error> {
        self.cluster.kubectl_run(args).map_err(|e| Error::Step(e.to_string()))
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> Result<String, Error> {
        use std::io::Write;
        let mut child = self
            .cluster
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(step("kubectl apply"))?;
        child.stdin.take().map(|mut s| s.write_all(yaml.as_bytes()));
        let out = child.wait_with_output().map_err(step("kubectl apply"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Step(format!("kubectl apply: {}", String::from_utf8_lossy(&out.stderr).trim())))
        }
    }

    /// Polls `f` every 500 ms until it gives `Some`, for at most `timeout`.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, Error> {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f() {
                return Ok(v);
            }
            if t0.elapsed() > timeout {
                return Err(Error::Step(format!("timed out after {} s waiting for {what}", timeout.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `kubectl wait --for=condition=Ready` on one pod.
    pub fn wait_ready(&self, ns: &str, pod: &str, timeout: Duration) -> Result<(), Error> {
        self.kubectl(&["wait", "-n", ns, "--for=condition=Ready", &format!("pod/{pod}"), &format!("--timeout={}s", timeout.as_secs())])
            .map(drop)
            .map_err(|e| Error::Step(format!("pod {ns}/{pod} not Ready: {e}\n{}", self.describe(ns, pod))))
    }

    /// `kubectl describe pod` (events included), for error messages.
    pub fn describe(&self, ns: &str, pod: &str) -> String {
        self.kubectl(&["describe", "pod", "-n", ns, pod]).unwrap_or_else(|e| e.to_string())
    }

    /// `kubectl exec <pod> -- <cmd>`.
    pub fn exec(&self, ns: &str, pod: &str, cmd: &[&str]) -> Result<String, Error> {
        let mut args = vec!["exec", "-n", ns, pod, "--"];
        args.extend_from_slice(cmd);
        self.kubectl(&args)
    }

    fn overlay_dir(&self) -> PathBuf {
        self.dir.join("overlay")
    }

    /// Writes the overlay and runs `kubectl apply -k` on it; waits for kubetron's pods and the synced NADs.
    pub fn install(&self) -> Result<(), Error> {
        let dir = self.overlay_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
        let port = self
            .cluster
            .api()
            .map(|a| a.server_url())
            .and_then(|u| u.rsplit(':').next().map(str::to_string))
            .ok_or_else(|| Error::Step("no apiserver".into()))?;
        let deploy = deploy_dir().canonicalize().map_err(|e| Error::Io { path: deploy_dir(), source: e })?;
        let overlay = Overlay {
            // kustomize v2.0 takes a base only as a path relative to the overlay.
            deploy: relative_path(&dir, &deploy),
            image: self.kubetron_image.clone(),
            nb_address: self.central.nb().tcp_remote().ok_or_else(|| Error::Step("NB has no TCP remote".into()))?,
            default_network: daemons::cluster::POD_NETWORK.to_string(),
            ovs_dir: self.chassis.dir().to_path_buf(),
            host_netns: PathBuf::from("/run/netns").join(CHASSIS_NETNS),
            cni_bin: self.cluster.cni_bin_dir(),
            cni_conf: self.cluster.cni_conf_dir(),
            apiserver_port: port,
        };
        for (name, text) in overlay.files() {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| Error::Io { path: p, source: e })?;
        }
        self.kubectl(&["apply", "-k", &dir.display().to_string()])?;
        for (kind, name) in [("daemonset", "kubetron-node"), ("deployment", "kubetron-controller"), ("deployment", "kubetron-webhook")] {
            self.kubectl(&["-n", "kubetron", "rollout", "status", &format!("{kind}/{name}"), &format!("--timeout={}s", WAIT.as_secs())])
                .map_err(|e| Error::Step(format!("{e}\n{}", self.kubectl(&["-n", "kubetron", "describe", "pods"]).unwrap_or_default())))?;
        }
        for net in DEMO_NETWORKS {
            self.wait_for(&format!("NAD default/{} from the controller's sync", net.name), WAIT, || {
                self.kubectl(&["get", "network-attachment-definitions.k8s.cni.cncf.io", "-n", "default", net.name, "-o", "name"]).ok()
            })?;
        }
        Ok(())
    }

    /// Tears everything down (the cluster first).
    pub fn stop(self) -> Result<(), Error> {
        let ClusterSandbox { mut cluster, mut chassis, mut central, .. } = self;
        let a = cluster.stop().map_err(|e| Error::Step(e.to_string()));
        let b = chassis.stop().map_err(Error::from);
        let c = central.stop().map_err(Error::from);
        a.and(b).and(c)
    }
}

/// `to` as a path relative to the directory `from` (both absolute).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let (f, t): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut rel: PathBuf = std::iter::repeat_n("..", f.len() - common).collect();
    rel.extend(&t[common..]);
    rel
}

/// The values the sandbox's overlay of deploy/ sets.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// deploy/, relative to the overlay's directory.
    pub deploy: PathBuf,
    pub image: String,
    /// `tcp:127.0.0.1:PORT`.
    pub nb_address: String,
    /// The cluster network's name (its conflist's), for network-status' eth0 entry (chained mode).
    pub default_network: String,
    pub ovs_dir: PathBuf,
    pub host_netns: PathBuf,
    pub cni_bin: PathBuf,
    pub cni_conf: PathBuf,
    pub apiserver_port: String,
}

impl Overlay {
    /// `(file name, contents)` of the overlay directory. Written for kustomize v2.0 (kubectl 1.20's):
    /// `bases` and `patchesStrategicMerge`.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let (name, tag) = self.image.rsplit_once(':').unwrap_or((&self.image, "latest"));
        let kustomization = format!(
            "# The sandbox's overlay of deploy/ (written by kubetron-sandbox; see crates/sandbox/src/cluster.rs).\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nbases:\n  - {deploy}\n\
             images:\n  - name: kubetron\n    newName: {name}\n    newTag: \"{tag}\"\n\
             patchesStrategicMerge:\n  - config.yaml\n  - controller.yaml\n  - webhook.yaml\n  - node.yaml\n",
            deploy = self.deploy.display()
        );
        let api_env = format!(
            "            - name: KUBERNETES_SERVICE_HOST\n              value: \"127.0.0.1\"\n\
             \x20           - name: KUBERNETES_SERVICE_PORT\n              value: \"{}\"\n",
            self.apiserver_port
        );
        let config = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kubetron-config\n  namespace: kubetron\n\
             data:\n  ovn-nb-address: \"{}\"\n  default-network-name: \"{}\"\n",
            self.nb_address, self.default_network
        );
        let controller = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kubetron-controller\n  namespace: kubetron\nspec:\n  replicas: 1\n\
             \x20 template:\n    spec:\n      hostNetwork: true\n      containers:\n        - name: controller\n          env:\n{api_env}\
             \x20           - name: KUBETRON_METRICS_ADDR\n              value: \"127.0.0.1:19101\"\n"
        );
        let webhook = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kubetron-webhook\n  namespace: kubetron\nspec:\n\
             \x20 template:\n    spec:\n      hostNetwork: true\n      containers:\n        - name: webhook\n\
             \x20         args: [\"webhook\", \"--listen=$(POD_IP):8443\", \"--dns-name=kubetron-webhook.kubetron.svc\", \"--register=kubetron-webhook\"]\n\
             \x20         env:\n            - name: POD_IP\n              valueFrom:\n                fieldRef:\n                  fieldPath: status.podIP\n{api_env}"
        );
        let node = format!(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: kubetron-node\n  namespace: kubetron\nspec:\n\
             \x20 template:\n    spec:\n      containers:\n        - name: node\n\
             \x20         args: [\"node\", \"--ovs-remote\", \"unix:/var/run/openvswitch/conf.sock\", \"--host-netns\", \"{netns}\"]\n\
             \x20         env:\n{api_env}\
             \x20           - name: KUBETRON_METRICS_ADDR\n              value: \"127.0.0.1:19102\"\n\
             \x20     volumes:\n        - name: ovs-run\n          hostPath:\n            path: {ovs}\n            type: Directory\n\
             \x20       - name: cni-bin\n          hostPath:\n            path: {bin}\n            type: Directory\n\
             \x20       - name: cni-net\n          hostPath:\n            path: {conf}\n            type: Directory\n",
            netns = self.host_netns.display(),
            ovs = self.ovs_dir.display(),
            bin = self.cni_bin.display(),
            conf = self.cni_conf.display()
        );
        vec![
            ("kustomization.yaml", kustomization),
            ("config.yaml", config),
            ("controller.yaml", controller),
            ("webhook.yaml", webhook),
            ("node.yaml", node),
        ]
    }
}

/// The demo's pods (namespace `default`, each on `red` and `blue`).
pub const DEMO_PODS: [&str; 2] = ["demo-a", "demo-b"];

/// A busybox pod (`sleep`) asking for `networks` (the `k8s.v1.cni.cncf.io/networks` value), as YAML.
pub fn pod_yaml(ns: &str, name: &str, networks: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n    k8s.v1.cni.cncf.io/networks: \"{networks}\"\n\
         spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: app\n      image: {BUSYBOX_IMAGE}\n      imagePullPolicy: Never\n\
         \x20     command: [\"sleep\", \"36000\"]\n{extra_spec}"
    )
}

/// What the demo saw in one pod.
#[derive(Debug, Clone)]
pub struct DemoPod {
    pub name: String,
    /// `k8s.v1.cni.cncf.io/network-status`, parsed.
    pub network_status: Vec<model::status::NetworkStatus>,
    /// `NETWORK_INTERFACE_RED` as the container sees it.
    pub env_red: String,
    /// `ip -o addr` inside the container.
    pub addresses: String,
}

impl DemoPod {
    /// The first address of the status entry of `network` (`default/<name>`).
    pub fn ip_on(&self, network: &str) -> Option<String> {
        let name = format!("default/{network}");
        self.network_status
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.ips.first())
            .map(|ip| ip.split('/').next().unwrap_or(ip).to_string())
    }
}

impl ClusterSandbox {
    /// The network-status annotation of a pod once it lists every interface in `want` (e.g. `net1`).
    pub fn wait_network_status(&self, ns: &str, pod: &str, want: &[&str]) -> Result<Vec<model::status::NetworkStatus>, Error> {
        let path = "jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}";
        self.wait_for(&format!("{ns}/{pod}'s network-status with {want:?}"), WAIT, || {
            let raw = self.kubectl(&["get", "pod", "-n", ns, pod, "-o", path]).ok()?;
            let parsed = model::status::parse_network_status(raw.trim()).ok()?;
            want.iter().all(|i| parsed.iter().any(|s| s.interface.as_deref() == Some(i))).then_some(parsed)
        })
    }

    /// Pings `ip` from inside `pod` (a few tries: the first packets may meet flows still being installed).
    pub fn ping(&self, ns: &str, pod: &str, ip: &str) -> Result<(), Error> {
        let mut last = String::new();
        for _ in 0..5 {
            match self.exec(ns, pod, &["ping", "-c", "1", "-W", "3", ip]) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Step(format!("{ns}/{pod} cannot ping {ip}: {last}")))
    }

    /// The seeds' demo: two pods on `red` and `blue` applied with kubectl, Running, pinging each other on
    /// both networks; returns what each pod shows.
    pub fn demo(&self) -> Result<Vec<DemoPod>, Error> {
        for pod in DEMO_PODS {
            self.apply(&pod_yaml("default", pod, "red, blue", ""))?;
        }
        let mut out = Vec::new();
        for pod in DEMO_PODS {
            self.wait_ready("default", pod, WAIT)?;
            let network_status = self.wait_network_status("default", pod, &["eth0", "net1", "net2"])?;
            let env_red =
                self.exec("default", pod, &["sh", "-c", &format!("echo ${}", model::env::env_var_name("red"))])?.trim().to_string();
            let addresses = self.exec("default", pod, &["ip", "-o", "-4", "addr"])?;
            out.push(DemoPod { name: pod.to_string(), network_status, env_red, addresses });
        }
        for net in ["red", "blue"] {
            let ip = out[1].ip_on(net).ok_or_else(|| Error::Step(format!("demo-b has no address on {net}")))?;
            self.ping("default", DEMO_PODS[0], &ip)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path(Path::new("/tmp/a/overlay"), Path::new("/work/main/deploy")), Path::new("../../../work/main/deploy"));
        assert_eq!(relative_path(Path::new("/work/x"), Path::new("/work/x/deploy")), Path::new("deploy"));
    }
}

//! The cluster-mode part of `cni_bench`: a real kube-apiserver, `kubetron controller` (the only
//! process with the Northbound address) and `kubetron node` (the CNI server) for the bench's
//! chassis, and the `kubetron-cni` shim run as a runtime runs a plugin.
//!
//! - **cycles**: per cycle a pod is created (scheduled on the chassis), its hand-off awaited (not
//!   timed: that is the controller's part of a pod start, the same in every mode), then the shim's
//!   ADD is timed from spawn to exit (ovn-installed included; a second variant without the wait),
//!   then DEL.
//! - **burst**: N pods handed over, then N shims spawned at once, then N DELs at once; failures and
//!   the agent's peak RSS (`VmHWM`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s::nad::{new_nad, NetworkAttachmentDefinition};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};
use testkit::cni::{CniInvocation, CniOutcome};

use crate::ok;

/// A daemon of the bench, killed (by its pid) when dropped.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    fn spawn(name: &str, dir: &Path, cmd: &mut Command) -> Result<Daemon> {
        let log = File::create(dir.join(format!("{name}.log")))?;
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        Ok(Daemon { child: cmd.spawn().with_context(|| format!("starting {name}"))? })
    }
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster-mode world: apiserver, controller, agent.
pub struct Cluster {
    pub dir: PathBuf,
    pub namespace: String,
    pub node: String,
    pub socket: PathBuf,
    pub shim: PathBuf,
    node_ns: Arc<File>,
    rt: tokio::runtime::Runtime,
    pods: Api<Pod>,
    pub agent: Daemon,
    _controller: Daemon,
    _apiserver: daemons::kube::KubeApiServer,
}

/// Results of the cycles.
#[derive(Default)]
pub struct Cycles {
    pub add: Vec<Duration>,
    pub add_nowait: Vec<Duration>,
    pub del: Vec<Duration>,
    /// The peer's ADD times, one taken right after each recorded cluster ADD+DEL (see
    /// [`Cluster::cycles`]), so both see the same machine load.
    pub peer_add: Vec<Duration>,
}

/// Results of the burst.
pub struct Burst {
    pub pods: usize,
    pub add_failed: usize,
    pub del_failed: usize,
    pub first_error: Option<String>,
    pub add_wall: Duration,
    pub del_wall: Duration,
    pub agent_hwm_kib: u64,
}

/// The chassis the cluster-mode part runs on.
pub struct Chassis<'a> {
    /// Its name (the Kubernetes node name).
    pub node: &'a str,
    /// Its Open_vSwitch database.
    pub ovs_remote: &'a str,
    /// Its network namespace (a name under /run/netns).
    pub netns: &'a str,
}

impl Cluster {
    /// Starts the apiserver, the NAD for `network` (the switch exists), the controller (Northbound
    /// `nb`) and the agent for `chassis`.
    pub fn start(kubetron: &Path, shim: &Path, dir: &Path, nb: &str, chassis: &Chassis, network: &str) -> Result<Cluster> {
        let (node, ovs_remote, node_netns) = (chassis.node, chassis.ovs_remote, chassis.netns);
        let apiserver = daemons::kube::KubeApiServer::start(daemons::kube::KubeConfig::with_default_bin(dir.join("kube"))?)?;
        let kubeconfig = apiserver.kubeconfig_path();
        let namespace = "bench".to_string();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let client = rt.block_on(async {
            let client = testkit::kube::client_from(&kubeconfig).await;
            testkit::kube::install_crd(&client).await;
            testkit::kube::create_namespace(&client, &namespace, &[]).await;
            // The controller's leader Lease lives in its own namespace.
            testkit::kube::create_namespace(&client, testkit::kube::KUBETRON_NS, &[]).await;
            let config = json!({"cniVersion": "1.0.0", "name": network, "type": "kubetron", "logical_switch": network});
            let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), &namespace);
            nads.create(&PostParams::default(), &new_nad(&namespace, network, &config.to_string(), &[])).await?;
            Ok::<_, anyhow::Error>(client)
        })?;
        let controller = Daemon::spawn(
            "controller",
            dir,
            Command::new(kubetron)
                .args(["controller", "--nb", nb, "--metrics-addr", "127.0.0.1:0", "--gc-interval-secs", "600", "--identity", "bench"])
                .env("KUBECONFIG", &kubeconfig)
                .env("KUBETRON_LOG", "warn")
                .env_remove("KUBETRON_OVN_NB"),
        )?;
        let socket_dir = dir.join("cni");
        let agent = Daemon::spawn(
            "agent",
            dir,
            Command::new(kubetron)
                .args(["node", "--node-name", node, "--ovs-remote", ovs_remote, "--metrics-addr", "127.0.0.1:0"])
                .arg("--cni-socket-dir")
                .arg(&socket_dir)
                .arg("--device-plugin-dir")
                .arg(dir.join("dp"))
                .args(["--host-netns", &format!("/run/netns/{node_netns}")])
                .env("KUBECONFIG", &kubeconfig)
                .env("KUBETRON_LOG", "warn")
                .env_remove("KUBETRON_OVN_NB"),
        )?;
        let node_ns = Arc::new(File::open(format!("/run/netns/{node_netns}"))?);
        let pods = Api::namespaced(client, &namespace);
        let c = Cluster {
            dir: dir.to_path_buf(),
            namespace,
            node: node.to_string(),
            socket: socket_dir.join("kubetron.sock"),
            shim: shim.to_path_buf(),
            node_ns,
            rt,
            pods,
            agent,
            _controller: controller,
            _apiserver: apiserver,
        };
        // Ready: the agent answers STATUS.
        let t = Instant::now();
        loop {
            let o = CniInvocation::new(&c.shim, "STATUS").config(&c.conf(network, 30_000, None)).run()?;
            if o.success() {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("the agent did not become ready: {} {}", o.stdout, o.stderr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(c)
    }

    /// The network config the runtime passes (cluster mode: no `nb`).
    pub fn conf(&self, network: &str, timeout_ms: u64, port_up_ms: Option<u64>) -> Value {
        let mut c = json!({"cniVersion": "1.1.0", "name": network, "type": "kubetron",
            "agent_socket": self.socket.display().to_string(), "timeout_ms": timeout_ms});
        if let Some(p) = port_up_ms {
            c["port_up_timeout_ms"] = json!(p);
        }
        c
    }

    /// Creates pods `names` on the node asking for `network`; returns their UIDs once every one is
    /// handed over.
    pub fn handed_over_pods(&self, names: &[String], network: &str) -> Result<Vec<String>> {
        self.rt.block_on(async {
            let pp = PostParams::default();
            for chunk in names.chunks(20) {
                let creates = chunk.iter().map(|n| {
                    let pod: Pod = serde_json::from_value(json!({
                        "metadata": {"name": n, "annotations": {"k8s.v1.cni.cncf.io/networks": network}},
                        "spec": {"nodeName": self.node, "containers": [{"name": "c", "image": "example.invalid/c:1"}]}
                    }))
                    .expect("pod");
                    let pods = self.pods.clone();
                    let pp = pp.clone();
                    async move { pods.create(&pp, &pod).await }
                });
                for r in futures::future::join_all(creates).await {
                    r?;
                }
            }
            let t = Instant::now();
            loop {
                let list = self.pods.list(&ListParams::default()).await?;
                let mut uids = Vec::new();
                for n in names {
                    let Some(p) = list.items.iter().find(|p| p.metadata.name.as_deref() == Some(n.as_str())) else { break };
                    let uid = p.metadata.uid.clone().unwrap_or_default();
                    let handed = p
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(model::handoff::ANNOTATION))
                        .and_then(|v| model::handoff::parse(v).ok())
                        .is_some_and(|h| h.handoff().is_some_and(|h| h.pod_uid == uid));
                    if !handed {
                        break;
                    }
                    uids.push(uid);
                }
                if uids.len() == names.len() {
                    return Ok(uids);
                }
                if t.elapsed() > Duration::from_secs(300) {
                    let log = std::fs::read_to_string(self.dir.join("controller.log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    bail!("{} of {} pods handed over after 300 s; controller log:\n{}", uids.len(), names.len(), tail.join("\n"));
                }
                tokio::time::sleep(Duration::from_millis(if names.len() == 1 { 2 } else { 200 })).await;
            }
        })
    }

    /// Deletes pods (not waited for).
    pub fn delete_pods(&self, names: &[String]) -> Result<()> {
        self.rt.block_on(async {
            let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
            for chunk in names.chunks(20) {
                let dels = chunk.iter().map(|n| self.pods.delete(n, &dp));
                for r in futures::future::join_all(dels).await {
                    r.map_err(|e| anyhow!("delete pod: {e}"))?;
                }
            }
            Ok(())
        })
    }

    /// One shim call for pod `name` (container `cid`, netns `netns`) as a runtime makes it.
    pub fn call(&self, command: &str, name: &str, uid: &str, cid: &str, netns: &Path, conf: &Value) -> CniInvocation {
        CniInvocation::new(&self.shim, command)
            .in_netns_file(self.node_ns.clone())
            .container_id(cid)
            .netns(netns)
            .ifname("net1")
            .args(&format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={name};K8S_POD_UID={uid}", self.namespace))
            .config(conf)
            .timeout(Duration::from_secs(150))
    }

    /// The timed cycles.
    /// `warmup + cycles` rounds of: a pod handed over, the shim's ADD (waiting for ovn-installed)
    /// and DEL, the same without the wait, then `peer(i)` (the reference plugin's ADD+DEL, which
    /// returns its ADD time): interleaved, so the ratio of the two is not skewed by load that
    /// changes between phases of the run.
    pub fn cycles(&self, network: &str, warmup: usize, cycles: usize, peer: &mut dyn FnMut(usize) -> Result<Duration>) -> Result<Cycles> {
        let mut out = Cycles::default();
        let wait = self.conf(network, 30_000, None);
        let nowait = self.conf(network, 30_000, Some(0));
        for i in 0..warmup + cycles {
            for (variant, conf) in [("w", &wait), ("n", &nowait)] {
                let name = format!("c{i}{variant}");
                let uid = self.handed_over_pods(std::slice::from_ref(&name), network)?.remove(0);
                let pod = netdev::TempNetns::new("ktbc")?;
                let cid = format!("cl{}c{i}{variant}", std::process::id());
                let add = ok(self.call("ADD", &name, &uid, &cid, pod.path(), conf).run()?, "cluster ADD")?;
                let del = ok(self.call("DEL", &name, &uid, &cid, pod.path(), conf).run()?, "cluster DEL")?;
                if i >= warmup {
                    if variant == "w" {
                        out.add.push(add.elapsed);
                        out.del.push(del.elapsed);
                    } else {
                        out.add_nowait.push(add.elapsed);
                    }
                }
                self.delete_pods(&[name])?;
            }
            let peer_add = peer(i)?;
            if i >= warmup {
                out.peer_add.push(peer_add);
            }
            if (i + 1) % 50 == 0 {
                eprintln!("[cni-bench] cluster mode: {}/{} cycles", i + 1, warmup + cycles);
            }
        }
        Ok(out)
    }

    /// `n` pods handed over, then `n` ADDs at once, then `n` DELs at once.
    pub fn burst(&self, network: &str, n: usize) -> Result<Burst> {
        let names: Vec<String> = (0..n).map(|i| format!("burst{i}")).collect();
        let t = Instant::now();
        let uids = self.handed_over_pods(&names, network)?;
        eprintln!("[cni-bench] burst: {n} pods handed over in {:.1}s", t.elapsed().as_secs_f64());
        let netns: Vec<netdev::TempNetns> = (0..n).map(|_| netdev::TempNetns::new("ktbb")).collect::<Result<_, _>>()?;
        // The deployed default (no port_up_timeout_ms: the agent waits for ovn-installed within
        // the deadline), with the longest deadline a config may ask for.
        let conf = self.conf(network, model::netconf::MAX_TIMEOUT_MS, None);
        let calls = |command: &str| -> Vec<CniInvocation> {
            (0..n)
                .map(|i| self.call(command, &names[i], &uids[i], &format!("bu{}c{i}", std::process::id()), netns[i].path(), &conf))
                .collect()
        };
        let run_all = |calls: Vec<CniInvocation>| -> (Duration, Vec<Result<CniOutcome, String>>) {
            let t = Instant::now();
            let handles: Vec<_> = calls.into_iter().map(|c| std::thread::spawn(move || c.run().map_err(|e| e.to_string()))).collect();
            let out = handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into()))).collect();
            (t.elapsed(), out)
        };
        let failed = |rs: &[Result<CniOutcome, String>], first: &mut Option<String>| {
            rs.iter()
                .filter(|r| match r {
                    Ok(o) if o.success() => false,
                    Ok(o) => {
                        first.get_or_insert_with(|| format!("{} {}", o.stdout, o.stderr.lines().last().unwrap_or("")));
                        true
                    }
                    Err(e) => {
                        first.get_or_insert_with(|| e.clone());
                        true
                    }
                })
                .count()
        };
        let mut first_error = None;
        let (add_wall, adds) = run_all(calls("ADD"));
        let add_failed = failed(&adds, &mut first_error);
        let (del_wall, dels) = run_all(calls("DEL"));
        let del_failed = failed(&dels, &mut first_error);
        let agent_hwm_kib = crate::vm_hwm_kib(&self.agent.pid().to_string()).unwrap_or(0);
        self.delete_pods(&names)?;
        Ok(Burst { pods: n, add_failed, del_failed, first_error, add_wall, del_wall, agent_hwm_kib })
    }
}

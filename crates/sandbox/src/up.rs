//! `kubetron-sandbox up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemons::netns::NetnsGuard;
use daemons::{Central, Chassis, ChassisConfig};
use serde_json::{json, Value};
use testkit::cni::CniInvocation;

use crate::progress::Progress;
use crate::state::{AgentState, IfaceState, NodeState, Options, PodState, SandboxState};
use crate::{networks, status, Error};

/// The packages the sandbox needs, installed by the project's own script when missing.
const INSTALL_SCRIPT: &str = include_str!("../../../scripts/install-deps.sh");
const PODS: usize = 2;
/// The agent's socket file in its `--cni-socket-dir`.
const AGENT_SOCKET_NAME: &str = "kubetron.sock";
/// The hand-off key file (`--neutron`) in the state directory.
const HANDOFF_KEY: &str = "handoff.key";

/// 32 random bytes (the hand-off key).
fn random_key() -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut k = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut k))
        .map_err(|e| Error::Io { path: "/dev/urandom".into(), source: e })?;
    Ok(k)
}

/// How long one plugin run may take before it is killed (its own deadlines are shorter).
const PLUGIN_BOUND: Duration = Duration::from_secs(120);

fn install_packages(with_kube: bool, vm: bool, neutron: bool) -> Result<(), Error> {
    use std::io::Write;
    let mut child = std::process::Command::new("bash")
        .arg("-s")
        .env("KUBETRON_KUBE", if with_kube { "1" } else { "0" })
        .env("KUBETRON_VM", if vm { "1" } else { "0" })
        .env("KUBETRON_NEUTRON", if neutron { "1" } else { "0" })
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Step(format!("running bash: {e}")))?;
    child.stdin.take().map(|mut s| s.write_all(INSTALL_SCRIPT.as_bytes()));
    let st = child.wait().map_err(|e| Error::Step(e.to_string()))?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::Step("installing the Debian packages failed (see above)".into()))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Step(e.to_string()))
}

/// Brings the sandbox up (a second `up` on a running sandbox only reports it). Returns its state.
pub fn up(opts: &Options) -> Result<SandboxState, Error> {
    if let Some(st) = SandboxState::load(&opts.dir)? {
        if status::stack_running(&opts.dir) {
            println!("The sandbox in {} is already up.", opts.dir.display());
            status::print(&opts.dir, &st)?;
            return Ok(st);
        }
        println!("A stopped sandbox was left in {}: cleaning it up first.", opts.dir.display());
        crate::down(&opts.dir)?;
    }
    if opts.vm && opts.neutron {
        return Err(Error::Step("--vm and --neutron do not go together (yet)".into()));
    }
    if opts.vm && opts.with_kube {
        return Err(Error::Step("--vm plugs its launcher pod with the standalone plugin: not with --with-kube (yet)".into()));
    }
    if !(1..=2).contains(&opts.nodes) {
        return Err(Error::Step(format!("--nodes must be 1 or 2, not {}", opts.nodes)));
    }
    std::fs::create_dir_all(&opts.dir).map_err(|e| Error::Io { path: opts.dir.clone(), source: e })?;
    let result = build(opts);
    if result.is_err() {
        // Every daemon and namespace was already stopped by its guard; drop the files too.
        let _ = std::fs::remove_dir_all(&opts.dir);
    }
    result
}

fn build(opts: &Options) -> Result<SandboxState, Error> {
    let dir = &opts.dir;
    if !opts.plugin.is_file() {
        return Err(Error::Missing { path: opts.plugin.clone(), hint: "the sandbox plugs pods with the kubetron binary".into() });
    }
    let shim = opts.shim();
    if opts.with_kube && !shim.is_file() {
        let hint = format!(
            "--with-kube plugs the pods with the cluster-mode CNI shim, built next to {} (cargo build -p cni --bin {})",
            opts.plugin.display(),
            crate::SHIM_NAME
        );
        return Err(Error::Missing { path: shim, hint });
    }
    let vm_steps = if opts.vm { 3 + usize::from(opts.nodes == 2) } else { 0 };
    let mut p = Progress::new(if opts.with_kube { 11 } else { 6 } + vm_steps + 2 * usize::from(opts.neutron));
    let pkgs = if opts.vm {
        "Checking the Debian packages (openvswitch-switch, ovn-central, ovn-host, qemu-system-x86, ...)"
    } else {
        "Checking the Debian packages (openvswitch-switch, ovn-central, ovn-host, ...)"
    };
    p.step(pkgs, || install_packages(opts.with_kube, opts.vm, opts.neutron))?;
    let central = p.step("Starting OVN central: Northbound and Southbound ovsdb-servers, ovn-northd", || {
        // neutron-server reaches NB and SB over TCP (127.0.0.1).
        Central::start(&dir.join("central"), opts.neutron)
    })?;
    let sb = central.sb_remote();
    let chassis = p.step(
        &format!("Starting {} chassis: ovsdb-server, ovs-vswitchd (userspace datapath), ovn-controller", opts.nodes),
        || -> Result<Vec<Chassis>, Error> {
            let mut v = Vec::new();
            for i in 0..opts.nodes {
                let name = format!("node{}", i + 1);
                let ns = format!("{}-{name}", opts.prefix);
                let cfg = ChassisConfig::new(&name, dir.join(&name), &ns, &sb, &format!("198.51.100.{}", i + 1));
                v.push(Chassis::start(cfg)?);
            }
            for i in 1..v.len() {
                daemons::link_underlay(&v[0], &v[i])?;
            }
            for c in &v {
                c.wait_registered(&sb, Duration::from_secs(30))?;
            }
            Ok(v)
        },
    )?;
    let nb_remote = central.nb_remote();
    let mut neutron = None;
    if opts.neutron {
        let stack = p.step(
            "Starting PostgreSQL and neutron-server (Debian's, ML2/OVN on this OVN, noauth; the first start migrates its database)",
            || {
                // PostgreSQL runs as `postgres`: it must get through the state directory.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
                    .map_err(|e| Error::Io { path: dir.clone(), source: e })?;
                let mut stack = daemons::neutron::Stack::start(dir, &central, None)?;
                for c in &chassis {
                    stack.wait_agent_alive(c.name(), Duration::from_secs(90))?;
                }
                Ok::<_, Error>(stack)
            },
        )?;
        let url = stack.server.url();
        let client = neutron::Client::new(neutron::ClientConfig::new(&url)).map_err(|e| Error::Step(e.to_string()))?;
        p.step(
            "Creating networks red (10.10.1.0/24) and blue (10.10.2.0/24) with Neutron's API, tagged kubetron:expose, kubetron:ns=default",
            || runtime()?.block_on(networks::ensure_in_neutron(&client)),
        )?;
        std::fs::write(dir.join(HANDOFF_KEY), random_key()?).map_err(|e| Error::Io { path: dir.join(HANDOFF_KEY), source: e })?;
        neutron = Some((stack, url, client));
    } else {
        p.step("Creating networks red (10.10.1.0/24) and blue (10.10.2.0/24) with OVN native DHCP", || {
            runtime()?.block_on(async {
                let nb = ovsdb::Client::connect_to(&nb_remote).await?;
                networks::ensure(&nb).await
            })
        })?;
    }
    let handoff_key = opts.neutron.then(|| dir.join(HANDOFF_KEY));

    let mut state = SandboxState {
        prefix: opts.prefix.clone(),
        nb_remote: nb_remote.clone(),
        sb_remote: sb.clone(),
        nodes: chassis
            .iter()
            .map(|c| NodeState { name: c.name().into(), netns: c.netns().into(), dir: c.dir().into(), db_remote: c.db_remote() })
            .collect(),
        pods: Vec::new(),
        kube: None,
        vm: None,
        neutron_url: neutron.as_ref().map(|(_, url, _)| url.clone()),
    };
    let names: Vec<String> = (0..PODS).map(|i| format!("pod{}", i + 1)).collect();
    // With --with-kube: the API server, the controller, one node agent per chassis, and the pods as
    // API objects (UIDs for CNI_ARGS).
    let mut kube_side = None;
    let mut agents = Vec::new();
    let mut cluster: Option<Cluster> = None;
    let mut uids: Vec<Option<String>> = vec![None; PODS];
    if opts.with_kube {
        let kas = p.step(
            "Starting etcd and kube-apiserver (the first run builds kube-apiserver from source: this takes several minutes)",
            || crate::kube::start_apiserver(dir),
        )?;
        let kubeconfig = kas.kubeconfig_path();
        let metrics_addr = format!("127.0.0.1:{}", daemons::process::free_tcp_port()?);
        let (controller, nad_configs) = p.step(
            "Installing the NAD CRD; starting kubetron controller, whose NAD sync mirrors red and blue into namespace default",
            || {
                crate::kube::install(&kubeconfig)?;
                let backend: Vec<String> = match &neutron {
                    None => vec!["--nb".into(), nb_remote.clone()],
                    Some((_, url, _)) => {
                        ["--backend", "neutron", "--neutron-url", url, "--neutron-auth", "noauth", "--neutron-sync-interval-secs", "2"]
                            .iter()
                            .map(|s| s.to_string())
                            .chain(["--handoff-key-file".to_string(), dir.join(HANDOFF_KEY).display().to_string()])
                            .collect()
                    }
                };
                let c = crate::kube::start_controller(&opts.plugin, dir, &kubeconfig, &backend, &metrics_addr)?;
                let nads = crate::kube::wait_for_synced_nads(&kubeconfig)?;
                Ok::<_, Error>((c, nads))
            },
        )?;
        let agent_states = p.step(
            &format!(
                "Starting {} node agent(s) (kubetron node, one per chassis; no kubelet, so device-plugin registration only warns)",
                opts.nodes
            ),
            || -> Result<Vec<AgentState>, Error> {
                let mut out = Vec::new();
                for n in &state.nodes {
                    let socket_dir = dir.join(format!("cni-{}", n.name));
                    let dp_dir = dir.join(format!("dp-{}", n.name));
                    std::fs::create_dir_all(&dp_dir).map_err(|e| Error::Io { path: dp_dir.clone(), source: e })?;
                    let metrics = format!("127.0.0.1:{}", daemons::process::free_tcp_port()?);
                    let spec = crate::kube::AgentSpec {
                        node: &n.name,
                        ovs_remote: &n.db_remote,
                        netns: &n.netns,
                        socket_dir: &socket_dir,
                        device_plugin_dir: &dp_dir,
                        metrics_addr: &metrics,
                        handoff_key: handoff_key.as_deref(),
                    };
                    let agent = crate::kube::start_agent(&opts.plugin, dir, &kubeconfig, &spec)?;
                    out.push(AgentState {
                        node: n.name.clone(),
                        socket: socket_dir.join(AGENT_SOCKET_NAME),
                        metrics_addr: metrics,
                        log: agent.log_path().to_path_buf(),
                    });
                    agents.push(agent);
                }
                for (a, s) in agents.iter().zip(&out) {
                    crate::kube::wait_agent_ready(&shim, a, &s.socket)?;
                }
                Ok(out)
            },
        )?;
        cluster = Some(Cluster { shim: shim.clone(), nad_configs, sockets: agent_states.iter().map(|a| a.socket.clone()).collect() });
        let placed: Vec<(String, String)> =
            names.iter().enumerate().map(|(i, n)| (n.clone(), state.nodes[i % opts.nodes].name.clone())).collect();
        let made = p
            .step("Creating pods pod1 and pod2 in the API (networks: red, blue); the controller hands them their addresses", || {
                crate::kube::create_pods(&kubeconfig, &placed)
            })?;
        uids = made.into_iter().map(Some).collect();
        state.kube = Some(crate::state::KubeState {
            kubeconfig: kubeconfig.clone(),
            server: kas.server_url(),
            controller_log: dir.join(crate::kube::CONTROLLER_LOG),
            metrics_addr,
            agents: agent_states,
        });
        kube_side = Some((kas, controller));
    }
    let mut guards = Vec::new();
    let how = if opts.with_kube {
        "the kubetron-cni shim (cluster mode: each chassis' node agent plugs from the hand-off)"
    } else {
        "the kubetron CNI plugin (standalone mode)"
    };
    p.step(&format!("Creating pods and plugging each into red and blue with {how}"), || -> Result<(), Error> {
        for (i, name) in names.iter().enumerate() {
            let guard = NetnsGuard::create(&format!("{}-{name}", opts.prefix))?;
            let node = i % opts.nodes;
            let mut pod = PodState {
                name: name.clone(),
                netns: guard.name().into(),
                node,
                container_id: format!("sandbox-{name}"),
                interfaces: vec![],
            };
            guards.push(guard);
            plug(opts, &state, &mut pod, uids[i].as_deref(), cluster.as_ref())?;
            state.pods.push(pod);
        }
        Ok(())
    })?;
    let mut statuses = Vec::new();
    if let Some(k) = &state.kube {
        statuses = p.step("Waiting for the controller to write the pods' network-status (ports up)", || {
            crate::kube::network_status(&k.kubeconfig, &names)
        })?;
    }
    state.save(dir)?;
    p.step("Pinging pod2 from pod1 on both networks", || ping_all(&state))?;
    if opts.vm {
        if let Err(e) = vm_steps_run(opts, &mut state, &mut p) {
            if let Some(v) = &state.vm {
                crate::vm::stop(dir, v);
                for ns in &v.netns_all {
                    let _ = netdev::Netns::delete(ns);
                }
            }
            return Err(e);
        }
        state.save(dir)?;
    }

    // Everything stays up for the user; `down` stops it by pid file.
    std::mem::forget(guards);
    std::mem::forget(chassis);
    std::mem::forget(central);
    let neutron_ports = match &neutron {
        Some((_, _, client)) => {
            Some(runtime()?.block_on(client.owned_ports()).map_err(|e| Error::Step(format!("Neutron: listing ports: {e}")))?)
        }
        None => None,
    };
    if let Some((stack, _, _)) = neutron {
        stack.detach();
    }
    if let Some((kas, controller)) = kube_side {
        controller.keep();
        for a in agents {
            a.keep();
        }
        std::mem::forget(kas);
    }
    println!();
    status::print(dir, &state)?;
    for a in &statuses {
        println!("\n{} {}: {}", a.name, model::status::NETWORK_STATUS_ANNOTATION, a.network_status);
        println!("{} {}: {}", a.name, model::status::INTERFACES_ANNOTATION, a.handoff);
    }
    if let (Some(ports), Some(url)) = (&neutron_ports, &state.neutron_url) {
        println!("\nThe pods' ports in Neutron ({url}/v2.0/ports?device_owner=compute:kubetron):");
        println!("{:<38} {:<28} {:<38} {:<8} STATUS", "ID", "NAME", "DEVICE_ID (pod UID)", "HOST");
        for p in ports {
            println!("{:<38} {:<28} {:<38} {:<8} {}", p.id, p.name, p.device_id, p.host_id.as_deref().unwrap_or(""), p.status);
        }
    }
    if let Some(v) = &state.vm {
        let vm_ip = v.interfaces[0].ip.split('/').next().unwrap_or("");
        println!("\nTry: ip netns exec {}-pod1 ping {vm_ip}   (the VM; its console: {})", opts.prefix, v.console.display());
    }
    let ip = state.pods[1].interfaces[0].ip.split('/').next().unwrap_or("");
    println!("\nTry: ip netns exec {}-pod1 ping {ip}", opts.prefix);
    if let Some(k) = &state.kube {
        println!("Pods in the API: kubectl --kubeconfig {} get pods -o wide", k.kubeconfig.display());
        println!("Controller log: {}", k.controller_log.display());
        for a in &k.agents {
            println!("Node agent on {}: socket {}, log {}", a.node, a.socket.display(), a.log.display());
        }
    }
    println!("Stop it with: kubetron-sandbox down --dir {}", dir.display());
    Ok(state)
}

/// The `--vm` steps: guest image, launcher pod + qemu (leases, guest pings), pod1 -> VM pings and, with
/// two nodes, one live migration. qemu keeps running when this returns successfully.
fn vm_steps_run(opts: &Options, state: &mut SandboxState, p: &mut Progress) -> Result<(), Error> {
    let dir = &opts.dir;
    let img =
        p.step("Guest image: Debian's cloud kernel + a busybox initramfs (built on the first run, then cached)", crate::vm::guest_image)?;
    let launcher = format!("{}-{}", opts.prefix, crate::vm::LAUNCHER_POD);
    let (mut vmst, mut v) = p.step(
        &format!(
            "Starting VM {} in launcher pod {} on node1: kubetron plugs it on red and blue ({}, {}), KubeVirt bridge binding, qemu (TCG) \
             with the MACs the VM asks for; waiting for its DHCP leases from OVN and its pings to pod1",
            crate::vm::VM_NAME,
            launcher,
            model::kubevirt::hashed_ifname("red"),
            model::kubevirt::hashed_ifname("blue"),
        ),
        || crate::vm::start(&opts.plugin, dir, state, &img),
    )?;
    state.vm = Some(vmst.clone());
    state.save(dir)?;
    p.step(&format!("Pinging {} from pod1 on both networks", crate::vm::VM_NAME), || crate::vm::ping_from_pod1(state, &vmst))?;
    if opts.nodes == 2 {
        let st = state.clone();
        let (nv, line) = p.step(
            "Live migration of vm1 node1 -> node2 while pod1 pings it every 10 ms (ports bound to both chassis, activation-strategy=rarp)",
            || crate::vm::migrate(&st, &mut vmst, dir, &img, v),
        )?;
        println!("{line}");
        v = nv;
        state.vm = Some(vmst.clone());
        state.save(dir)?;
    }
    crate::vm::keep(v);
    state.vm = Some(vmst);
    Ok(())
}

/// What cluster-mode plugging needs: the shim, the NADs' configs by network, each chassis' agent socket.
struct Cluster {
    shim: PathBuf,
    nad_configs: BTreeMap<String, Value>,
    sockets: Vec<PathBuf>,
}

fn plug(opts: &Options, state: &SandboxState, pod: &mut PodState, uid: Option<&str>, cluster: Option<&Cluster>) -> Result<(), Error> {
    let node = &state.nodes[pod.node];
    let netns_path = Path::new("/run/netns").join(&pod.netns);
    for (ifname, net) in [("net1", "red"), ("net2", "blue")] {
        let mut args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={}", crate::kube::NAMESPACE, pod.name);
        let (plugin, config) = match cluster {
            // A Kubernetes pod: the runtime passes the NAD's config to the shim, which has the
            // chassis' agent plug the pod from the controller's hand-off.
            Some(c) => {
                let uid = uid.ok_or_else(|| Error::Step(format!("pod {} has no UID", pod.name)))?;
                args.push_str(&format!(";K8S_POD_UID={uid}"));
                let nad = c.nad_configs.get(net).ok_or_else(|| Error::Step(format!("no NAD for network {net}")))?;
                (c.shim.as_path(), crate::kube::cluster_config(nad, &c.sockets[pod.node]))
            }
            None => (
                opts.plugin.as_path(),
                json!({
                    "cniVersion": "1.0.0", "name": net, "type": "kubetron", "mode": "standalone",
                    "nb": state.nb_remote, "ovs_socket": node.db_remote,
                }),
            ),
        };
        let invocation = CniInvocation::new(plugin, "ADD")
            .inherit_env()
            .in_named_netns(&node.netns)
            .container_id(&pod.container_id)
            .netns(&netns_path)
            .ifname(ifname)
            .args(&args)
            .config(&config)
            .timeout(PLUGIN_BOUND);
        let result = run_plugin(&invocation, ifname)?;
        let ip = result["ips"][0]["address"].as_str().unwrap_or("").to_string();
        let mac = result["interfaces"][1]["mac"].as_str().unwrap_or("").to_string();
        pod.interfaces.push(IfaceState { ifname: ifname.into(), network: net.into(), mac, ip });
    }
    Ok(())
}

/// Runs the plugin as a container runtime does; a failure becomes an error carrying the plugin's message.
fn run_plugin(invocation: &CniInvocation, ifname: &str) -> Result<Value, Error> {
    let out = invocation.run().map_err(|e| Error::Step(e.to_string()))?;
    if !out.success() {
        let msg = out.error().map(|e| e.msg).unwrap_or_else(|| out.stderr.clone());
        return Err(Error::Step(format!("CNI ADD {ifname} failed (code {}): {msg}", out.json["code"])));
    }
    Ok(out.json)
}

fn ping_all(state: &SandboxState) -> Result<(), Error> {
    let (from, to) = (&state.pods[0], &state.pods[1]);
    for (i, iface) in to.interfaces.iter().enumerate() {
        let ip = iface.ip.split('/').next().unwrap_or("");
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &from.netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", ip])
            .output()
            .map_err(|e| Error::Step(format!("ping: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(Error::Step(format!("{} -> {} ({}) on {}: no reply\n{text}", from.name, to.name, ip, iface.network)));
        }
        let rtt = text.lines().find(|l| l.contains("min/avg")).and_then(|l| l.split('=').nth(1)).unwrap_or("").trim();
        print!("{}{} {} -> {} {ip}: rtt min/avg/max/mdev {rtt}", if i == 0 { "\n" } else { "" }, iface.network, from.name, to.name);
        println!();
    }
    Ok(())
}
